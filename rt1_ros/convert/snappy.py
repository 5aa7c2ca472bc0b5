"""Raw Snappy decompression (https://github.com/google/snappy/blob/main/format_description.txt), in Python.

The released RT-1 checkpoints' .index files (rt1main, rt1simreal, rt1multirobot) were written by Google's own
TensorFlow build with snappy-compressed table blocks (block type 1), which stock TensorFlow never writes; the
tensor-bundle reader needs this to list them. A block is a few kB, so a byte loop is fast enough.

    stream = varint(uncompressed length) element*
    element: tag byte, low 2 bits
      00 literal: length (tag >> 2) + 1, or for (tag >> 2) >= 60 a (tag >> 2) - 59 byte little-endian length - 1
      01 copy:    length ((tag >> 2) & 7) + 4, offset ((tag >> 5) << 8) | next byte
      10 copy:    length (tag >> 2) + 1, offset = next 2 bytes little-endian
      11 copy:    length (tag >> 2) + 1, offset = next 4 bytes little-endian
    a copy repeats `length` bytes starting `offset` back; it may overlap what it writes (offset < length)
"""
from __future__ import annotations


class SnappyError(ValueError):
    """Input that is not a valid raw Snappy stream."""


def decompress(data: bytes | bytearray | memoryview) -> bytes:
    data = bytes(data)
    length, position, shift = 0, 0, 0
    while True:
        if position >= len(data) or shift > 28:
            raise SnappyError("truncated or oversized length header")
        byte = data[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    out = bytearray()
    while position < len(data):
        tag = data[position]
        position += 1
        kind = tag & 3
        if kind == 0:
            count = tag >> 2
            if count >= 60:
                extra = count - 59
                if position + extra > len(data):
                    raise SnappyError("truncated literal length")
                count = int.from_bytes(data[position:position + extra], "little")
                position += extra
            count += 1
            if position + count > len(data):
                raise SnappyError(f"a {count}-byte literal runs past the end of the input")
            out += data[position:position + count]
            position += count
            continue
        if kind == 1:
            if position + 1 > len(data):
                raise SnappyError("truncated copy")
            count, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | data[position]
            position += 1
        else:
            width = 2 if kind == 2 else 4
            if position + width > len(data):
                raise SnappyError("truncated copy")
            count, offset = (tag >> 2) + 1, int.from_bytes(data[position:position + width], "little")
            position += width
        if offset == 0 or offset > len(out):
            raise SnappyError(f"a copy reaches {offset} bytes back with {len(out)} written")
        start = len(out) - offset
        if offset >= count:
            out += out[start:start + count]
        else:  # overlapping: the pattern repeats
            for i in range(count):
                out.append(out[start + i])
        if len(out) > length:
            raise SnappyError(f"output exceeds the declared {length} bytes")
    if len(out) != length:
        raise SnappyError(f"decoded {len(out)} bytes, the header declares {length}")
    return bytes(out)
