"""TensorFlow's checkpoint format (the "tensor bundle"), read and written with numpy alone.

A checkpoint ``<prefix>`` is two kinds of file (tensorflow/core/util/tensor_bundle/tensor_bundle.cc):

* ``<prefix>.index``: a LevelDB-style sorted table (tensorflow/core/lib/io/table_builder.cc, block_builder.cc,
  format.cc) mapping each checkpoint key to a serialized ``BundleEntryProto`` (dtype, shape, shard, offset, size,
  masked crc32c of the bytes); the empty key holds the ``BundleHeaderProto`` (number of shards, endianness,
  version). The table is data blocks of prefix-compressed keys with restart points, an empty meta-index block, an
  index block (one separator key -> block handle per data block) and a 48-byte footer ending in a magic number.
  Every block carries a type byte (0 plain, 1 snappy) and a masked crc32c.
* ``<prefix>.data-NNNNN-of-MMMMM``: the tensors' raw little-endian bytes at the entries' offsets. A string tensor
  is its varint64 lengths, a masked crc32c of the lengths, then the bytes.

TensorFlow writes the index uncompressed, but the released RT-1 checkpoints' indexes (written by Google's internal
tools) are snappy-compressed blocks, decoded by `rt1_ros.convert.snappy`. The few protobuf fields needed
are decoded by hand, so neither TensorFlow nor protobuf is needed. ``object_graph_names`` decodes the
``_CHECKPOINTABLE_OBJECT_GRAPH`` that object-based checkpoints (``tf.train.Checkpoint``, a SavedModel's
``variables/variables``) carry, to name each key by its path from the root object.
"""
from __future__ import annotations

import heapq
import math
import os
import struct
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
DEFAULT_BLOCK_SIZE = 262144  # tensorflow/core/lib/io/table_options.h
RESTART_INTERVAL = 16
TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48  # two block handles padded to 2 x 20 bytes, then the 8-byte magic number
BLOCK_TRAILER_BYTES = 5  # type byte + masked crc32c
LFS_POINTER_SIGNATURE = b"version https://git-lfs.github.com/spec/v1"
RELEASE_DOWNLOAD_HINT = (
    "fetch the real file with `git lfs install && git lfs pull` in your clone of "
    "google-research/robotics_transformer (trained_checkpoints/), or download the checkpoint from the public bucket "
    "gs://gdm-robotics-open-x-embodiment/open_x_embodiment_and_rt_x_oss/ (e.g. `gsutil -m cp -r "
    "gs://gdm-robotics-open-x-embodiment/open_x_embodiment_and_rt_x_oss/rt_1_tf_trained_for_000400120 .`)")


class TensorBundleError(ValueError):
    """A checkpoint file that is truncated, corrupt, or uses a feature this reader does not implement."""


class GitLfsPointerError(TensorBundleError):
    """A checkpoint file that is a Git LFS pointer (~134 bytes of text) instead of the data it stands for."""


# ------------------------------------------------------------------------------------------------------- crc32c
# Castagnoli CRC, reflected polynomial 0x82F63B78, as leveldb and TensorFlow use it. Pure Python byte by byte is
# ~150 ns/byte, too slow for a 400 MB checkpoint, so long inputs are cut into equal lanes run side by side in
# numpy, each from a zero register, and folded: the register after lane i+1 is shift(register after lane i) xor
# lane i+1's own register, where shift (running a lane's length of zero bytes) is linear, kept as 4 byte tables.
_CASTAGNOLI = 0x82F63B78
_PYTHON_LOOP_BYTES = 1 << 12


def _byte_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        register = byte
        for _ in range(8):
            register = (register >> 1) ^ (_CASTAGNOLI if register & 1 else 0)
        table[byte] = register
    return table


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()
_PAIR_TABLE = np.arange(1 << 16, dtype=np.uint32)  # two bytes at once: half the numpy steps per lane
for _ in range(2):
    _PAIR_TABLE = _TABLE[_PAIR_TABLE & 0xFF] ^ (_PAIR_TABLE >> 8)


@lru_cache(maxsize=16)
def _zero_shift_tables(lane_bytes: int) -> tuple[list[int], ...]:
    registers = np.arange(1024, dtype=np.uint32)
    registers = (registers & 0xFF) << (8 * (registers >> 8))  # byte b at position i, for i in 0..3
    for _ in range(lane_bytes):
        registers = _TABLE[registers & 0xFF] ^ (registers >> 8)
    return tuple(row.tolist() for row in registers.reshape(4, 256))


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, crc: int = 0) -> int:
    """CRC-32C of ``data``, continuing ``crc`` (leveldb's crc32c::Extend; 0 starts a new one)."""
    buffer = (np.ascontiguousarray(data).reshape(-1).view(np.uint8) if isinstance(data, np.ndarray)
              else np.frombuffer(data, dtype=np.uint8))
    register = crc ^ 0xFFFFFFFF
    if len(buffer) < _PYTHON_LOOP_BYTES:
        head, lane_bytes = len(buffer), 0
    else:
        # A numpy step per lane byte costs ~20 lanes' folds in Python: lanes ~sqrt(n)/4 bytes long balance the two.
        lane_bytes = 1 << max(6, round(math.log2(math.sqrt(len(buffer)) / 4)))
        head = len(buffer) % lane_bytes
    table = _TABLE_LIST
    for byte in buffer[:head].tobytes():
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    if lane_bytes:
        lanes = np.ascontiguousarray(buffer[head:].view("<u2").reshape(-1, lane_bytes // 2).T)  # (L/2, lanes)
        lane_registers = np.zeros(lanes.shape[1], dtype=np.uint32)
        for column in lanes:
            lane_registers = _PAIR_TABLE[(lane_registers ^ column) & 0xFFFF] ^ (lane_registers >> 16)
        s0, s1, s2, s3 = _zero_shift_tables(lane_bytes)
        for lane_register in lane_registers.tolist():
            register = (s0[register & 0xFF] ^ s1[(register >> 8) & 0xFF] ^ s2[(register >> 16) & 0xFF]
                        ^ s3[register >> 24] ^ lane_register)
    return register ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """leveldb stores CRCs rotated and offset, so that a CRC of data holding CRCs is not degenerate."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------- protobuf wire format
def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # int32/int64 negatives are ten-byte two's complement on the wire
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _Cursor:
    """Reads varints and fixed-width fields from ``data``, naming ``where`` when it runs past the end."""

    def __init__(self, data: bytes | memoryview, where: str, start: int = 0, end: int | None = None) -> None:
        self.data, self.where, self.position = data, where, start
        self.end = len(data) if end is None else end

    def truncated(self, what: str) -> TensorBundleError:
        return TensorBundleError(f"{self.where}: truncated or corrupt ({what} runs past the end)")

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self.position >= self.end or shift > 63:
                raise self.truncated("a varint")
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def take(self, count: int, what: str = "a field") -> bytes:
        if count < 0 or self.position + count > self.end:
            raise self.truncated(what)
        chunk = bytes(self.data[self.position:self.position + count])
        self.position += count
        return chunk

    @property
    def at_end(self) -> bool:
        return self.position >= self.end


def _fields(message: bytes, where: str) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint and fixed fields, bytes for length-delimited ones."""
    cursor, fields = _Cursor(message, where), []
    while not cursor.at_end:
        tag = cursor.varint()
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value = cursor.varint()
        elif wire_type == 1:
            value = struct.unpack("<Q", cursor.take(8))[0]
        elif wire_type == 2:
            value = cursor.take(cursor.varint(), "a length-delimited field")
        elif wire_type == 5:
            value = struct.unpack("<I", cursor.take(4))[0]
        else:
            raise TensorBundleError(f"{where}: not a protobuf message (wire type {wire_type})")
        fields.append((number, value))
    return fields


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


# ------------------------------------------------------------------------------------------------------ dtypes
# tensorflow/core/framework/types.proto DataType -> numpy. bfloat16 needs ml_dtypes (installed with torch's stack);
# without it its raw bits come back as uint16.
_DT_STRING = 7
_DT_BFLOAT16 = 14


def _bfloat16() -> np.dtype:
    try:
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    except ImportError:
        return np.dtype("<u2")


_NUMPY_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), _DT_STRING: np.dtype(object), 8: np.dtype("<c8"), 9: np.dtype("<i8"), 10: np.dtype("?"),
    _DT_BFLOAT16: _bfloat16(), 17: np.dtype("<u2"), 18: np.dtype("<c16"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
_UNSUPPORTED_DTYPE_NAMES = {0: "DT_INVALID", 11: "DT_QINT8", 12: "DT_QUINT8", 13: "DT_QINT32", 15: "DT_QINT16",
                            16: "DT_QUINT16", 20: "DT_RESOURCE", 21: "DT_VARIANT"}


def _dtype_enum(dtype: np.dtype, key: str) -> int:
    if dtype.name == "bfloat16":
        return _DT_BFLOAT16
    if dtype.kind in "OSU":
        return _DT_STRING
    for enum, candidate in _NUMPY_DTYPES.items():
        if enum != _DT_BFLOAT16 and candidate.kind != "O" and candidate == dtype.newbyteorder("<"):
            return enum
    raise TypeError(f"tensor {key!r}: dtype {dtype} has no TensorFlow checkpoint equivalent")


# ---------------------------------------------------------------------------------------------- sorted table
def _read_block(index: bytes, handle: tuple[int, int], path: Path) -> list[tuple[bytes, bytes]]:
    """The key/value pairs of the block at ``handle`` (offset, size), checksum verified."""
    offset, size = handle
    if offset + size + BLOCK_TRAILER_BYTES > len(index) - FOOTER_BYTES:
        raise TensorBundleError(f"{path}: truncated or corrupt (a block at {offset}+{size} lies past the end of "
                                f"the {len(index)}-byte file)")
    contents = index[offset:offset + size]
    block_type = index[offset + size]
    stored = struct.unpack_from("<I", index, offset + size + 1)[0]
    if crc32c(index[offset:offset + size + 1]) != unmask_crc(stored):
        raise TensorBundleError(f"{path}: corrupt (checksum mismatch in the index block at byte {offset})")
    if block_type == 1:  # the checksum covers the compressed bytes, checked above
        from rt1_ros.convert.snappy import SnappyError, decompress

        try:
            contents = decompress(contents)
        except SnappyError as exc:
            raise TensorBundleError(f"{path}: corrupt (the snappy block at byte {offset}: {exc})") from None
        size = len(contents)
    elif block_type != 0:
        raise TensorBundleError(f"{path}: corrupt (unknown block type {block_type} at byte {offset})")
    if size < 4:
        raise TensorBundleError(f"{path}: corrupt (a {size}-byte block at byte {offset})")
    restarts = struct.unpack_from("<I", contents, size - 4)[0]
    entries_end = size - 4 - 4 * restarts
    if restarts < 1 or entries_end < 0:
        raise TensorBundleError(f"{path}: corrupt (block at byte {offset} claims {restarts} restart points)")
    cursor = _Cursor(contents, f"{path} (block at byte {offset})", end=entries_end)
    pairs: list[tuple[bytes, bytes]] = []
    key = b""
    while not cursor.at_end:
        shared, unshared, value_length = cursor.varint(), cursor.varint(), cursor.varint()
        if shared > len(key):
            raise TensorBundleError(f"{path}: corrupt (a key shares {shared} bytes with a {len(key)}-byte key)")
        key = key[:shared] + cursor.take(unshared, "a key")
        pairs.append((key, cursor.take(value_length, "a value")))
    return pairs


def _block_handle(encoded: bytes, where: str) -> tuple[int, int]:
    cursor = _Cursor(encoded, where)
    return cursor.varint(), cursor.varint()


def _read_table(path: Path) -> list[tuple[bytes, bytes]]:
    index = path.read_bytes()
    _refuse_lfs_pointer(path, index[:len(LFS_POINTER_SIGNATURE)], len(index))
    if len(index) < FOOTER_BYTES:
        raise TensorBundleError(f"{path}: truncated ({len(index)} bytes, shorter than the {FOOTER_BYTES}-byte "
                                "table footer)")
    magic = struct.unpack_from("<Q", index, len(index) - 8)[0]
    if magic != TABLE_MAGIC:
        raise TensorBundleError(f"{path}: not a TensorFlow checkpoint index or truncated (bad magic number "
                                f"{magic:#018x}, expected {TABLE_MAGIC:#018x})")
    footer = _Cursor(index, f"{path} (footer)", start=len(index) - FOOTER_BYTES)
    footer.varint(), footer.varint()  # the meta-index block: always empty in TensorFlow's tables
    index_handle = footer.varint(), footer.varint()
    pairs: list[tuple[bytes, bytes]] = []
    for _, encoded_handle in _read_block(index, index_handle, path):
        pairs.extend(_read_block(index, _block_handle(encoded_handle, f"{path} (index block)"), path))
    for (previous, _), (key, _) in zip(pairs, pairs[1:]):
        if key <= previous:
            raise TensorBundleError(f"{path}: corrupt (keys out of order: {previous!r} then {key!r})")
    return pairs


class _BlockBuilder:
    """block_builder.cc: keys share their prefix with the previous key, except at every restart point."""

    def __init__(self, restart_interval: int) -> None:
        self.restart_interval = restart_interval
        self.buffer = bytearray()
        self.restarts = [0]
        self.since_restart = 0
        self.last_key = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.since_restart < self.restart_interval:
            limit = min(len(key), len(self.last_key))
            while shared < limit and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.since_restart = 0
        self.buffer += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        self.last_key = key
        self.since_restart += 1

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        return bytes(self.buffer) + struct.pack(f"<{len(self.restarts) + 1}I", *self.restarts, len(self.restarts))


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key >= start and < limit, for the index (table_builder.cc FindShortestSeparator)."""
    common = 0
    while common < min(len(start), len(limit)) and start[common] == limit[common]:
        common += 1
    if common < min(len(start), len(limit)) and start[common] < 0xFF and start[common] + 1 < limit[common]:
        return start[:common] + bytes([start[common] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for position, byte in enumerate(key):
        if byte != 0xFF:
            return key[:position] + bytes([byte + 1])
    return key


def _build_table(pairs: list[tuple[bytes, bytes]], block_size: int) -> bytes:
    """table_builder.cc with compression off: the same bytes TensorFlow writes for the same pairs."""
    out = bytearray()

    def write_block(block: _BlockBuilder) -> bytes:
        contents = block.finish() + b"\x00"
        handle = _varint(len(out)) + _varint(len(contents) - 1)
        out.extend(contents + struct.pack("<I", mask_crc(crc32c(contents))))
        return handle

    data_block, index_block = _BlockBuilder(RESTART_INTERVAL), _BlockBuilder(1)
    pending_handle: bytes | None = None
    last_key = b""
    for position, (key, value) in enumerate(pairs):
        if position > 0 and len(key) + len(value) >= 2 * block_size and data_block.buffer:
            pending_handle = write_block(data_block)
            data_block = _BlockBuilder(RESTART_INTERVAL)
        if pending_handle is not None:
            index_block.add(_shortest_separator(last_key, key), pending_handle)
            pending_handle = None
        last_key = key
        data_block.add(key, value)
        if data_block.size_estimate() >= block_size:
            pending_handle = write_block(data_block)
            data_block = _BlockBuilder(RESTART_INTERVAL)
    if data_block.buffer:
        pending_handle = write_block(data_block)
    metaindex_handle = write_block(_BlockBuilder(RESTART_INTERVAL))
    if pending_handle is not None:
        index_block.add(_short_successor(last_key), pending_handle)
    index_handle = write_block(index_block)
    out += (metaindex_handle + index_handle).ljust(FOOTER_BYTES - 8, b"\x00") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out)


# ------------------------------------------------------------------------------------------------ the bundle
@dataclass(frozen=True)
class _Entry:
    key: str
    dtype_enum: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    masked_crc: int | None
    partitioned: bool


def _index_path(prefix: str | Path) -> Path:
    text = str(prefix)
    return Path(text if text.endswith(".index") else text + ".index")


def _data_path(index_path: Path, shard: int, shards: int) -> Path:
    return Path(f"{str(index_path)[:-len('.index')]}.data-{shard:05d}-of-{shards:05d}")


def _refuse_lfs_pointer(path: Path, head: bytes, size: int) -> None:
    if head.startswith(LFS_POINTER_SIGNATURE):
        raise GitLfsPointerError(f"{path} is a Git LFS pointer ({size} bytes of text), not checkpoint data: the "
                                 f"repository was cloned without git-lfs. To get the weights, {RELEASE_DOWNLOAD_HINT}")


def _parse_shape(message: bytes, where: str) -> tuple[int, ...]:
    dims = []
    for number, value in _fields(message, where):
        if number == 3 and value:
            raise TensorBundleError(f"{where}: shape of unknown rank")
        if number == 2:
            size = next((_signed64(v) for n, v in _fields(value, where) if n == 1), 0)
            if size < 0:
                raise TensorBundleError(f"{where}: dimension of unknown size ({size})")
            dims.append(size)
    return tuple(dims)


def _parse_entry(key: str, value: bytes, where: str) -> _Entry:
    fields = {"dtype": 0, "shape": (), "shard": 0, "offset": 0, "size": 0, "crc": None, "partitioned": False}
    for number, field in _fields(value, where):
        if number == 1:
            fields["dtype"] = field
        elif number == 2:
            fields["shape"] = _parse_shape(field, where)
        elif number == 3:
            fields["shard"] = field
        elif number == 4:
            fields["offset"] = _signed64(field)
        elif number == 5:
            fields["size"] = _signed64(field)
        elif number == 6:
            fields["crc"] = field
        elif number == 7:
            fields["partitioned"] = True
    return _Entry(key, fields["dtype"], fields["shape"], fields["shard"], fields["offset"], fields["size"],
                  fields["crc"], fields["partitioned"])


@dataclass(frozen=True)
class _Bundle:
    index_path: Path
    shards: int
    entries: dict[str, _Entry]

    def data_path(self, shard: int) -> Path:
        return _data_path(self.index_path, shard, self.shards)


def _open_bundle(prefix: str | Path) -> _Bundle:
    index_path = _index_path(prefix)
    if not index_path.is_file():
        raise FileNotFoundError(f"checkpoint index not found: {index_path} (give the prefix, e.g. "
                                "path/to/ckpt-424760 for ckpt-424760.index, or path/to/variables/variables)")
    pairs = _read_table(index_path)
    if not pairs or pairs[0][0] != b"":
        raise TensorBundleError(f"{index_path}: corrupt (no bundle header entry)")
    header = dict(_fields(pairs[0][1], f"{index_path} (header)"))
    shards = header.get(1, 0)
    if header.get(2, 0) != 0:
        raise TensorBundleError(f"{index_path}: written on a big-endian machine; this reader reads little-endian "
                                "checkpoints only")
    if shards < 1:
        raise TensorBundleError(f"{index_path}: corrupt (header says {shards} data shards)")
    entries = {}
    for raw_key, value in pairs[1:]:
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            key = raw_key.decode("latin-1")  # a partitioned variable's slice entries encode their slice specs
        entry = _parse_entry(key, value, f"{index_path} (entry {key!r})")
        if not entry.partitioned and not 0 <= entry.shard < shards:
            raise TensorBundleError(f"{index_path}: corrupt (entry {key!r} in shard {entry.shard} of {shards})")
        entries[key] = entry
    bundle = _Bundle(index_path, shards, entries)
    for shard in range(shards):
        path = bundle.data_path(shard)
        if path.is_file():
            with open(path, "rb") as data:
                _refuse_lfs_pointer(path, data.read(len(LFS_POINTER_SIGNATURE)), path.stat().st_size)
    return bundle


def _unsupported(entry: _Entry) -> str:
    name = _UNSUPPORTED_DTYPE_NAMES.get(entry.dtype_enum, f"DataType {entry.dtype_enum}")
    return f"{name} (not a plain numeric or string tensor)" if not entry.partitioned else "a partitioned variable"


def _read_string_tensor(entry: _Entry, raw: bytes, where: str) -> np.ndarray:
    count = math.prod(entry.shape)
    if count == 0 and not raw:
        return np.empty(entry.shape, dtype=object)
    cursor = _Cursor(raw, where)
    lengths = [cursor.varint() for _ in range(count)]
    crc = 0
    for length in lengths:
        crc = crc32c(struct.pack("<I", length) if length <= 0xFFFFFFFF else struct.pack("<Q", length), crc)
    stored = cursor.take(4, "the length checksum")
    if unmask_crc(struct.unpack("<I", stored)[0]) != crc:
        raise TensorBundleError(f"{where}: corrupt (string length checksum mismatch)")
    crc = crc32c(stored, crc)
    values = np.empty(count, dtype=object)
    for position, length in enumerate(lengths):
        values[position] = cursor.take(length, "a string")
        crc = crc32c(values[position], crc)
    if entry.masked_crc is not None and unmask_crc(entry.masked_crc) != crc:
        raise TensorBundleError(f"{where}: corrupt (crc32c mismatch)")
    return values.reshape(entry.shape)


def _read_tensor(entry: _Entry, data, data_path: Path) -> np.ndarray:
    where = f"{data_path} (tensor {entry.key!r} at byte {entry.offset})"
    dtype = _NUMPY_DTYPES.get(entry.dtype_enum)
    if dtype is None or entry.partitioned:
        raise TensorBundleError(f"{where}: cannot read {_unsupported(entry)}")
    data.seek(entry.offset)
    if dtype.kind == "O":
        raw = data.read(entry.size)
        if len(raw) != entry.size:
            raise TensorBundleError(f"{where}: truncated ({len(raw)} of {entry.size} bytes)")
        return _read_string_tensor(entry, raw, where)
    expected = math.prod(entry.shape) * dtype.itemsize  # before allocating: a corrupt shape must not exhaust memory
    if entry.size != expected:
        raise TensorBundleError(f"{where}: corrupt (entry says {entry.size} bytes, {dtype.name}{list(entry.shape)} "
                                f"is {expected})")
    array = np.empty(entry.shape, dtype=dtype)
    flat = array.reshape(-1).view(np.uint8)
    got = data.readinto(memoryview(flat)) if array.nbytes else 0
    if got != array.nbytes:
        raise TensorBundleError(f"{where}: truncated ({got} of {array.nbytes} bytes)")
    if entry.masked_crc is not None and crc32c(flat) != unmask_crc(entry.masked_crc):
        raise TensorBundleError(f"{where}: corrupt (crc32c mismatch)")
    return array


def list_variables(prefix: str | Path) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Checkpoint key -> (numpy dtype, shape), in key order, without reading tensor data. String tensors (e.g.
    ``_CHECKPOINTABLE_OBJECT_GRAPH``) have dtype object; keys of a dtype with no numpy equivalent (resource,
    variant, quantized) and partitioned variables are left out with a warning naming them."""
    bundle = _open_bundle(prefix)
    listed, left_out = {}, []
    for key, entry in bundle.entries.items():
        dtype = _NUMPY_DTYPES.get(entry.dtype_enum)
        if dtype is None or entry.partitioned:
            left_out.append(f"{key} ({_unsupported(entry)})")
        elif "\x00" not in key:
            listed[key] = (dtype, entry.shape)
    if left_out:
        warnings.warn(f"{bundle.index_path}: left out {len(left_out)} entries this reader cannot read: "
                      + ", ".join(left_out), stacklevel=2)
    return listed


def read_variables(prefix: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Checkpoint key -> array (writable, little-endian; bfloat16 as ml_dtypes.bfloat16; strings as an object
    array of bytes), crc32c verified. ``keys=None`` reads every numeric tensor: string tensors are metadata
    (``_CHECKPOINTABLE_OBJECT_GRAPH``, Keras layer configs) and are read only when asked for by key.

    Raises KeyError naming missing keys, GitLfsPointerError for an LFS pointer in place of a file, and
    TensorBundleError (a ValueError) naming the file for a truncated or corrupt one."""
    bundle = _open_bundle(prefix)
    if keys is None:
        wanted = [key for key, dtype in _quiet_listing(bundle).items() if dtype.kind != "O"]
    else:
        wanted = list(keys)
        missing = [key for key in wanted if key not in bundle.entries]
        if missing:
            raise KeyError(f"{bundle.index_path} has no entries {missing}")
    by_shard: dict[int, list[_Entry]] = {}
    for key in wanted:
        entry = bundle.entries[key]
        by_shard.setdefault(entry.shard, []).append(entry)
    arrays = {}
    for shard, entries in sorted(by_shard.items()):
        data_path = bundle.data_path(shard)
        if not data_path.is_file():
            raise FileNotFoundError(f"checkpoint data not found: {data_path} (listed by {bundle.index_path})")
        with open(data_path, "rb") as data:
            for entry in sorted(entries, key=lambda e: e.offset):
                arrays[entry.key] = _read_tensor(entry, data, data_path)
    return {key: arrays[key] for key in wanted}


def _quiet_listing(bundle: _Bundle) -> dict[str, np.dtype]:
    return {key: _NUMPY_DTYPES[entry.dtype_enum] for key, entry in bundle.entries.items()
            if entry.dtype_enum in _NUMPY_DTYPES and not entry.partitioned and "\x00" not in key}


def _tensor_bytes(key: str, array: np.ndarray) -> tuple[int, bytes, int]:
    """(DataType, bytes in the data file, unmasked crc32c) as BundleWriter::Add writes them."""
    dtype_enum = _dtype_enum(array.dtype, key)
    if dtype_enum != _DT_STRING:
        payload = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        return dtype_enum, payload, crc32c(payload)
    strings = [item.encode("utf-8") if isinstance(item, str) else bytes(item) for item in array.reshape(-1)]
    lengths, crc = b"", 0
    for item in strings:
        lengths += _varint(len(item))
        crc = crc32c(struct.pack("<I", len(item)) if len(item) <= 0xFFFFFFFF else struct.pack("<Q", len(item)), crc)
    length_checksum = struct.pack("<I", mask_crc(crc))
    crc = crc32c(length_checksum, crc)
    for item in strings:
        crc = crc32c(item, crc)
    return dtype_enum, lengths + length_checksum + b"".join(strings), crc


def write_tensor_bundle(prefix: str | Path, tensors: Mapping[str, np.ndarray], *,
                        block_size: int = DEFAULT_BLOCK_SIZE) -> None:
    """Writes ``<prefix>.index`` and ``<prefix>.data-00000-of-00001`` as TensorFlow's BundleWriter does (one
    shard, little-endian, format version 1), readable by ``tf.train.load_checkpoint``. Strings (str, bytes, or
    numpy S/U arrays) become DT_STRING. ``block_size`` (bytes per index block) exists for tests of many blocks."""
    index_path = _index_path(prefix)
    data_path = _data_path(index_path, 0, 1)
    ordered = sorted(((key.encode("utf-8"), key) for key in tensors), key=lambda pair: pair[0])
    if ordered and ordered[0][0] == b"":
        raise ValueError("the empty key is the bundle header's and cannot name a tensor")
    index_path.parent.mkdir(parents=True, exist_ok=True)
    pairs = [(b"", _field(1, 1) + _field(3, _field(1, 1)))]  # BundleHeaderProto: 1 shard, LITTLE, producer 1
    temporary_data = data_path.with_name(data_path.name + ".tempstate")
    with open(temporary_data, "wb") as data:
        offset = 0
        for raw_key, key in ordered:
            array = np.asarray(tensors[key])
            dtype_enum, payload, crc = _tensor_bytes(key, array)
            shape = b"".join(_field(2, _field(1, dim) if dim else b"") for dim in array.shape)
            entry = _field(1, dtype_enum) + _field(2, shape)
            entry += (_field(4, offset) if offset else b"") + (_field(5, len(payload)) if payload else b"")
            entry += _varint(6 << 3 | 5) + struct.pack("<I", mask_crc(crc))
            pairs.append((raw_key, entry))
            data.write(payload)
            offset += len(payload)
    temporary_index = index_path.with_name(index_path.name + ".tempstate")
    temporary_index.write_bytes(_build_table(pairs, block_size))
    os.replace(temporary_data, data_path)
    os.replace(temporary_index, index_path)


# ------------------------------------------------------------------------------------------ the object graph
_OPTIMIZER_SLOTS = ".OPTIMIZER_SLOT"
_PLAIN_VARIABLE = "VARIABLE_VALUE"


def _escape_local_name(name: str) -> str:
    """As TensorFlow builds checkpoint keys (trackable's _escape_local_name): '.' -> '..', '/' -> '.S'."""
    return name.replace(".", "..").replace("/", ".S")


def object_graph_names(prefix: str | Path) -> dict[str, str]:
    """Checkpoint key -> path of its variable from the root object (escaped local names joined by '/'), from the
    bundle's TrackableObjectGraph; {} for a name-based (TF1 Saver) checkpoint, whose keys are already names.

    A SavedModel reaches each variable by several paths (its keys follow lists such as ``model_variables/7``): the
    path given ends in a name rather than a list index where it can, then has the fewest list indices, then the
    fewest steps, then comes first breadth-first; for a ``tf.train.Checkpoint`` that is its key without
    ``/.ATTRIBUTES/VARIABLE_VALUE``. An attribute other than a
    variable's value gets ``<path>/.ATTRIBUTES/<name>``; an optimizer slot ``<variable path>/.OPTIMIZER_SLOT/
    <optimizer path>/<slot name>`` as TensorFlow names it."""
    bundle = _open_bundle(prefix)
    if OBJECT_GRAPH_KEY not in bundle.entries:
        return {}
    serialized = read_variables(prefix, [OBJECT_GRAPH_KEY])[OBJECT_GRAPH_KEY].reshape(-1)
    if len(serialized) != 1:
        raise TensorBundleError(f"{bundle.index_path}: {OBJECT_GRAPH_KEY} is not a single string")
    where = f"{bundle.index_path} ({OBJECT_GRAPH_KEY})"
    children, attributes, slots = [], [], []
    for number, node in _fields(serialized[0], where):
        if number != 1:
            continue
        node_children, node_attributes, node_slots = [], [], []
        for field, value in _fields(node, where):
            if field in (1, 2, 3):
                parts = dict(_fields(value, where))
                if field == 1:
                    node_children.append((parts.get(1, 0), parts.get(2, b"").decode("utf-8")))
                elif field == 2:
                    node_attributes.append((parts.get(1, b"").decode("utf-8"), parts.get(3, b"").decode("utf-8")))
                else:
                    node_slots.append((parts.get(1, 0), parts.get(2, b"").decode("utf-8"), parts.get(3, 0)))
        children.append(node_children)
        attributes.append(node_attributes)
        slots.append(node_slots)
    if not children:
        raise TensorBundleError(f"{where}: the object graph has no nodes")

    paths: dict[int, str] = {}
    costs: dict[int, tuple[int, int]] = {}
    parents: dict[int, list[tuple[int, int, str]]] = {}  # node -> (discovery order, parent, escaped local name)
    queue = [(0, 0, 0, 0, "")]  # (list indices, steps, discovery order, node, path)
    order = 1
    while queue:
        indices, steps, _, node, path = heapq.heappop(queue)
        if node in paths:
            continue
        paths[node], costs[node] = path, (indices, steps)
        for child, local_name in children[node] if 0 <= node < len(children) else []:
            name = _escape_local_name(local_name)
            parents.setdefault(child, []).append((order, node, name))
            if child not in paths:
                heapq.heappush(queue, (indices + name.isdigit(), steps + 1, order, child,
                                       f"{path}/{name}" if path else name))
            order += 1
    # A variable is named by its own attribute where it has one: PolicySaver's flat list (model_variables/37)
    # has fewer list indices than _layers/0/ff/kernel, but names nothing.
    for node, node_attributes in enumerate(attributes):
        if node_attributes and parents.get(node):
            _, parent, name = min(parents[node], key=lambda edge: (
                edge[2].isdigit(), costs[edge[1]][0] + edge[2].isdigit(), costs[edge[1]][1], edge[0]))
            paths[node] = f"{paths[parent]}/{name}" if paths[parent] else name
    for optimizer, references in enumerate(slots):
        for variable, slot_name, slot_node in references:
            if optimizer in paths and variable in paths and slot_node not in paths:
                paths[slot_node] = (f"{paths[variable]}/{_OPTIMIZER_SLOTS}/{paths[optimizer]}/"
                                    f"{_escape_local_name(slot_name)}")
    names = {}
    for node, node_attributes in enumerate(attributes):
        if node not in paths:
            continue
        for name, checkpoint_key in node_attributes:
            if checkpoint_key:
                names[checkpoint_key] = (paths[node] if name == _PLAIN_VARIABLE
                                         else f"{paths[node]}/.ATTRIBUTES/{name}".lstrip("/"))
    return names
