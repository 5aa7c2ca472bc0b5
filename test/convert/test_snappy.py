"""Raw Snappy decompression on streams built by hand from the format description, one per element kind."""
import pytest

from rt1_ros.convert.snappy import SnappyError, decompress


def test_a_literal():
    assert decompress(b"\x03" + bytes([2 << 2]) + b"abc") == b"abc"


def test_a_long_literal_has_its_length_in_extra_bytes():
    payload = bytes(range(200))
    assert decompress(bytes([200, 1]) + bytes([60 << 2, 199]) + payload) == payload  # varint 200 = c8 01
    assert decompress(bytes([200, 1]) + bytes([61 << 2]) + (199).to_bytes(2, "little") + payload) == payload


def test_an_overlapping_one_byte_offset_copy_repeats_the_pattern():
    # "abc", then copy 9 bytes from 3 back: tag = (offset >> 8) << 5 | (9 - 4) << 2 | 1.
    assert decompress(b"\x0c" + bytes([2 << 2]) + b"abc" + bytes([(5 << 2) | 1, 3])) == b"abc" * 4


def test_two_and_four_byte_offset_copies():
    literal = bytes(range(64)) * 5  # 320 bytes
    stream = bytearray(b"\xae\x03")  # varint 430 = 320 + 74 + 36
    stream += bytes([61 << 2]) + (319).to_bytes(2, "little") + literal  # 320-byte literal, two length bytes
    stream += bytes([(64 - 1) << 2 | 2]) + (300).to_bytes(2, "little")  # 64 bytes from 300 back
    stream += bytes([(10 - 1) << 2 | 2]) + (300).to_bytes(2, "little")  # 10 more from 300 back
    stream += bytes([(36 - 1) << 2 | 3]) + (10).to_bytes(4, "little")  # 36 bytes from 10 back (overlaps)
    expected = bytearray(literal)
    expected += expected[20:84]
    expected += expected[84:94]
    for _ in range(36):
        expected.append(expected[-10])
    assert decompress(bytes(stream)) == bytes(expected)


@pytest.mark.parametrize("stream, problem", [
    (b"\x05" + bytes([2 << 2]) + b"abc", "declares 5"),
    (b"\x03" + bytes([2 << 2]) + b"ab", "runs past the end"),
    (b"\x08" + bytes([2 << 2]) + b"abc" + bytes([(1 << 2) | 1, 4]), "4 bytes back with 3 written"),
    (b"\x80", "truncated"),
])
def test_invalid_streams_are_refused_saying_why(stream, problem):
    with pytest.raises(SnappyError, match=problem):
        decompress(stream)
