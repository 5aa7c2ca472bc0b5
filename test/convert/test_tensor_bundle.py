"""rt1_ros.convert.tensor_bundle: TensorFlow checkpoints read and written without TensorFlow.

The TensorFlow cross-checks at the end run only where tensorflow is importable (not in the project environment);
fixtures/tf_checkpoint is a checkpoint TensorFlow wrote (fixtures/README.md), read here without it."""
from __future__ import annotations

import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from rt1_ros.convert import tensor_bundle as tb
from rt1_ros.convert.tensor_bundle import (OBJECT_GRAPH_KEY, GitLfsPointerError, TensorBundleError, list_variables,
                                           object_graph_names, read_variables, write_tensor_bundle)

FIXTURES = Path(__file__).parent / "fixtures"
LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 423721772\n")


def every_dtype() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "float32/matrix": rng.standard_normal((3, 5)).astype(np.float32),
        "float32/scalar": np.array(1.5, dtype=np.float32),
        "float32/empty": np.zeros((0,), dtype=np.float32),
        "float32/empty_middle": np.zeros((2, 0, 3), dtype=np.float32),
        "float16": rng.standard_normal((4, 1, 2)).astype(np.float16),
        "bfloat16": rng.standard_normal((7,)).astype(ml_dtypes.bfloat16),
        "float64": rng.standard_normal((2, 2)),
        "int8": np.array([-128, 0, 127], dtype=np.int8),
        "int16": np.array([[-32768, 7]], dtype=np.int16),
        "int32": np.arange(-6, 6, dtype=np.int32).reshape(3, 4),
        "int64": np.array(424760, dtype=np.int64),
        "uint8": np.arange(256, dtype=np.uint8),
        "uint16": np.array([65535], dtype=np.uint16),
        "uint32": np.array([2**32 - 1], dtype=np.uint32),
        "uint64": np.array([2**64 - 1], dtype=np.uint64),
        "bool": np.array([[True, False, True]]),
        "complex64": np.array([1 + 2j], dtype=np.complex64),
        "complex128": np.array([[3 - 1j]], dtype=np.complex128),
    }


def test_crc32c_matches_the_castagnoli_check_value_and_extends_across_the_lane_path():
    assert tb.crc32c(b"123456789") == 0xE3069283
    assert tb.unmask_crc(tb.mask_crc(0xE3069283)) == 0xE3069283
    data = np.random.default_rng(1).integers(0, 256, 60_001, dtype=np.uint8).tobytes()
    register = 0xFFFFFFFF  # byte at a time, the definition
    for byte in data:
        register = tb._TABLE_LIST[(register ^ byte) & 0xFF] ^ (register >> 8)
    assert tb.crc32c(data) == register ^ 0xFFFFFFFF
    assert tb.crc32c(data[20_000:], tb.crc32c(data[:20_000])) == tb.crc32c(data)


def test_every_dtype_and_shape_round_trips(tmp_path):
    tensors = every_dtype()
    write_tensor_bundle(tmp_path / "ckpt-1", tensors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    listed = list_variables(tmp_path / "ckpt-1")
    assert list(listed) == sorted(tensors)
    for key, array in tensors.items():
        assert listed[key] == (array.dtype, array.shape), key
    read = read_variables(tmp_path / "ckpt-1")
    for key, array in tensors.items():
        assert read[key].dtype == array.dtype and read[key].shape == array.shape, key
        assert read[key].tobytes() == array.tobytes(), key
        read[key][...] = 0  # writable, not a view of a read-only buffer
    assert read_variables(str(tmp_path / "ckpt-1.index"), ["int8"])["int8"].tolist() == [-128, 0, 127]


def test_string_tensors_are_listed_read_by_key_and_left_out_of_a_full_read(tmp_path):
    tensors = {"names": np.array([["a", "ü"], ["", "long" * 100]]), "blob": np.array(b"\x00\xff"),
               "none": np.array([], dtype=object), "weight": np.ones(2, np.float32)}
    write_tensor_bundle(tmp_path / "s", tensors)
    assert list_variables(tmp_path / "s")["names"] == (np.dtype(object), (2, 2))
    assert list(read_variables(tmp_path / "s")) == ["weight"]
    strings = read_variables(tmp_path / "s", ["names", "blob", "none"])
    assert strings["names"].tolist() == [[b"a", "ü".encode()], [b"", b"long" * 100]]
    assert strings["blob"].shape == () and strings["blob"].item() == b"\x00\xff"
    assert strings["none"].shape == (0,)


@pytest.mark.parametrize("block_size, keys, padding", [(256, 300, 10), (4096, 400, 10),
                                                        (tb.DEFAULT_BLOCK_SIZE, 800, 300)])
def test_many_keys_span_several_index_blocks_and_restart_points(tmp_path, block_size, keys, padding):
    # Keys sharing long prefixes (as Keras paths do) exercise the prefix compression; one non-ASCII key the
    # byte order; one longer than two blocks the early flush; the default 256 KiB block overflows with long keys.
    tensors = {f"agent/_actor_network/_transformer/_layers/{i // 40}/_attention/key_{i:05d}/.ATTRIBUTES/"
               f"VARIABLE_VALUE{'x' * padding}": np.full((i % 3,), i, dtype=np.int32) for i in range(keys)}
    tensors["zz/ünïcode"] = np.array(7, dtype=np.int64)
    tensors["agent/" + "long" * 150] = np.zeros(1, np.float32)
    write_tensor_bundle(tmp_path / "many", tensors, block_size=block_size)
    index = (tmp_path / "many.index").read_bytes()
    data_blocks = tb._read_block(index, _index_handle(index), tmp_path / "many.index")  # (separator, handle)
    assert len(data_blocks) > 1
    offset, size = tb._block_handle(data_blocks[0][1], "handle")
    restarts = struct.unpack_from("<I", index, offset + size - 4)[0]
    first_block = tb._read_block(index, (offset, size), tmp_path / "many.index")
    assert restarts == -(-len(first_block) // tb.RESTART_INTERVAL) and (restarts > 1 or block_size == 256)
    read = read_variables(tmp_path / "many")
    assert list(read) == sorted(tensors, key=str.encode)
    for key, array in tensors.items():
        np.testing.assert_array_equal(read[key], array)


def encode_object_graph(nodes: list[dict]) -> bytes:
    """A TrackableObjectGraph built by hand: nodes of {children: [(id, name)], attributes: [(name, key)],
    slots: [(variable id, slot name, slot id)]}."""
    field = tb._field
    graph = b""
    for node in nodes:
        body = b"".join(field(1, field(1, child) + field(2, name.encode())) for child, name in node.get("children", ()))
        body += b"".join(field(2, field(1, name.encode()) + field(2, b"full/" + key.encode()) + field(3, key.encode()))
                         for name, key in node.get("attributes", ()))
        body += b"".join(field(3, field(1, variable) + field(2, slot.encode()) + field(3, slot_node))
                         for variable, slot, slot_node in node.get("slots", ()))
        graph += field(1, body)
    return graph


def test_object_graph_names_each_key_by_its_readable_path(tmp_path):
    # 0 root -> model(1) -> dense(3) -> kernel(4); root -> model_variables(7) -> 0 -> kernel(4) is shorter but goes
    # through a list index, as a SavedModel's keys do; root -> opt(5) holds slot m of kernel in node 8; node 10 is
    # model_variables/1 and model/_layers/0/ff_kernel (as many list indices, more steps, but named).
    value = "VARIABLE_VALUE"
    nodes = [
        {"children": [(1, "model"), (2, "save_counter"), (5, "opt"), (7, "model_variables")]},
        {"children": [(3, "dense"), (6, "a.b/c"), (11, "_layers")]},
        {"attributes": [(value, "variables/1/.ATTRIBUTES/VARIABLE_VALUE")]},
        {"children": [(4, "kernel")], "attributes": [("OBJECT_CONFIG_JSON", "layer/.ATTRIBUTES/OBJECT_CONFIG_JSON")]},
        {"attributes": [(value, "variables/0/.ATTRIBUTES/VARIABLE_VALUE")]},
        {"slots": [(4, "m", 8)]},
        {"attributes": [(value, "variables/2/.ATTRIBUTES/VARIABLE_VALUE")]},
        {"children": [(4, "0"), (10, "1")]},
        {"attributes": [(value, "kernel_m")]},
        {"attributes": [(value, "unreachable")]},
        {"attributes": [(value, "variables/3/.ATTRIBUTES/VARIABLE_VALUE")]},
        {"children": [(12, "0")]},
        {"children": [(10, "ff_kernel")]},
    ]
    tensors = {f"variables/{i}/.ATTRIBUTES/VARIABLE_VALUE": np.zeros(i + 1, np.float32) for i in range(3)}
    tensors[OBJECT_GRAPH_KEY] = np.array(encode_object_graph(nodes), dtype=object)
    write_tensor_bundle(tmp_path / "saved", tensors)
    assert object_graph_names(tmp_path / "saved") == {
        "variables/0/.ATTRIBUTES/VARIABLE_VALUE": "model/dense/kernel",
        "variables/1/.ATTRIBUTES/VARIABLE_VALUE": "save_counter",
        "variables/2/.ATTRIBUTES/VARIABLE_VALUE": "model/a..b.Sc",
        "variables/3/.ATTRIBUTES/VARIABLE_VALUE": "model/_layers/0/ff_kernel",  # not model_variables/1
        "layer/.ATTRIBUTES/OBJECT_CONFIG_JSON": "model/dense/.ATTRIBUTES/OBJECT_CONFIG_JSON",
        "kernel_m": "model/dense/kernel/.OPTIMIZER_SLOT/opt/m",
    }
    write_tensor_bundle(tmp_path / "name_based", {"w": np.zeros(1)})
    assert object_graph_names(tmp_path / "name_based") == {}


def test_git_lfs_pointers_are_named_with_how_to_get_the_data(tmp_path):
    (tmp_path / "ckpt-424760.index").write_bytes(LFS_POINTER)
    with pytest.raises(GitLfsPointerError, match=r"ckpt-424760\.index is a Git LFS pointer") as raised:
        list_variables(tmp_path / "ckpt-424760")
    assert "git lfs install && git lfs pull" in str(raised.value)
    assert "gs://gdm-robotics-open-x-embodiment/open_x_embodiment_and_rt_x_oss/" in str(raised.value)
    assert isinstance(raised.value, ValueError)
    write_tensor_bundle(tmp_path / "real", {"w": np.ones(3, np.float32)})
    (tmp_path / "real.data-00000-of-00001").write_bytes(LFS_POINTER)
    for read in (list_variables, read_variables):
        with pytest.raises(GitLfsPointerError, match=r"real\.data-00000-of-00001 is a Git LFS pointer"):
            read(tmp_path / "real")


@pytest.fixture
def bundle(tmp_path) -> Path:
    write_tensor_bundle(tmp_path / "ckpt", {"a/kernel": np.arange(64, dtype=np.float32).reshape(8, 8),
                                            "b/bias": np.ones(4, np.float32)})
    return tmp_path / "ckpt"


def rewrite(path: Path, edit) -> None:
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(edit(data)))


def flip(position: int):
    def edit(data: bytearray) -> bytearray:
        data[position] ^= 0x01
        return data
    return edit


def test_a_truncated_index_is_refused_naming_the_file(bundle):
    rewrite(bundle.with_suffix(".index"), lambda data: data[:30])
    with pytest.raises(TensorBundleError, match=r"ckpt\.index: truncated"):
        list_variables(bundle)


def test_a_bad_magic_number_is_refused(bundle):
    rewrite(bundle.with_suffix(".index"), flip(-1))
    with pytest.raises(TensorBundleError, match=r"ckpt\.index: not a TensorFlow checkpoint index .*bad magic"):
        list_variables(bundle)


def test_a_corrupt_index_block_fails_its_checksum(bundle):
    rewrite(bundle.with_suffix(".index"), flip(3))
    with pytest.raises(TensorBundleError, match=r"ckpt\.index: corrupt \(checksum mismatch"):
        read_variables(bundle)


def snappy_literals(data: bytes) -> bytes:
    """A valid snappy stream of ``data`` made of literal runs only (the format's simplest encoding)."""
    out = bytearray()
    length = len(data)
    while True:  # varint of the uncompressed length
        out.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    for start in range(0, len(data), 60):
        chunk = data[start:start + 60]
        out.append((len(chunk) - 1) << 2)  # literal tag, length - 1 < 60 in the tag itself
        out += chunk
    return bytes(out)


def test_a_snappy_block_reads_as_its_plain_twin_and_a_broken_one_is_refused(bundle):
    """The released RT-1 indexes are snappy-compressed blocks (written by Google's tools, not TensorFlow)."""
    index_path = bundle.with_suffix(".index")
    index = index_path.read_bytes()
    handle = _index_handle(index)
    plain = tb._read_block(index, handle, index_path)
    compressed = snappy_literals(index[handle[0]:handle[0] + handle[1]])
    sealed = compressed + b"\x01" + struct.pack("<I", tb.mask_crc(tb.crc32c(compressed + b"\x01")))
    padded = sealed + bytes(tb.FOOTER_BYTES)
    assert tb._read_block(padded, (0, len(compressed)), index_path) == plain and len(plain) > 0
    broken = compressed[:1] + b"\xff" + compressed[2:]  # a tag that copies from before the start
    sealed = broken + b"\x01" + struct.pack("<I", tb.mask_crc(tb.crc32c(broken + b"\x01")))
    with pytest.raises(TensorBundleError, match="corrupt \\(the snappy block"):
        tb._read_block(sealed + bytes(tb.FOOTER_BYTES), (0, len(broken)), index_path)


def _index_handle(index: bytes) -> tuple[int, int]:
    footer = tb._Cursor(index, "footer", start=len(index) - tb.FOOTER_BYTES)
    footer.varint(), footer.varint()
    return footer.varint(), footer.varint()


def test_corrupt_tensor_bytes_fail_the_crc_naming_file_and_key(bundle):
    rewrite(Path(f"{bundle}.data-00000-of-00001"), flip(5))
    assert read_variables(bundle, ["b/bias"])["b/bias"].tolist() == [1, 1, 1, 1]
    with pytest.raises(TensorBundleError, match=r"ckpt\.data-00000-of-00001 \(tensor 'a/kernel' .*crc32c mismatch"):
        read_variables(bundle)


def test_truncated_or_missing_data_is_refused(bundle):
    data = Path(f"{bundle}.data-00000-of-00001")
    rewrite(data, lambda raw: raw[:100])
    assert list(list_variables(bundle)) == ["a/kernel", "b/bias"]  # the index alone is intact
    with pytest.raises(TensorBundleError, match=r"tensor 'a/kernel' at byte 0\): truncated \(100 of 256 bytes\)"):
        read_variables(bundle)
    data.unlink()
    with pytest.raises(FileNotFoundError, match=r"ckpt\.data-00000-of-00001"):
        read_variables(bundle)
    with pytest.raises(KeyError, match="no entries"):
        read_variables(bundle, ["c"])
    with pytest.raises(FileNotFoundError, match="checkpoint index not found"):
        list_variables(bundle.with_name("elsewhere"))


TF_CHECKPOINT_KEYS = [
    "_CHECKPOINTABLE_OBJECT_GRAPH", "net/count", "net/embedding", "net/empty", "net/flags", "net/layers/0/bias",
    "net/layers/1/bias", "net/layers/1/kernel", "net/pixels", "net/scalar", "net/shared", "net/step", "net/wide",
    "optimizer/_iterations", "optimizer/_learning_rate", "optimizer/_variables/1", "optimizer/_variables/2",
    "optimizer/_variables/3", "optimizer/_variables/4",
]
VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def test_a_checkpoint_tensorflow_wrote_reads_as_tensorflow_lists_it():
    prefix = FIXTURES / "tf_checkpoint" / "ckpt"
    listed = list_variables(prefix)
    assert list(listed) == [TF_CHECKPOINT_KEYS[0]] + [key + VALUE for key in TF_CHECKPOINT_KEYS[1:]]
    values = {key.removesuffix(VALUE): value for key, value in read_variables(prefix).items()}
    assert {key: (value.dtype.name, value.shape) for key, value in values.items()} == {
        "net/count": ("int32", ()), "net/embedding": ("bfloat16", (2, 3)), "net/empty": ("float32", (0, 4)),
        "net/flags": ("bool", (2,)), "net/layers/0/bias": ("float32", (3,)), "net/layers/1/bias": ("float16", (3,)),
        "net/layers/1/kernel": ("float16", (4, 3)), "net/pixels": ("uint8", (5,)), "net/scalar": ("float32", ()),
        "net/shared": ("float32", (2, 3)), "net/step": ("int64", ()), "net/wide": ("float64", (4,)),
        "optimizer/_iterations": ("int64", ()), "optimizer/_learning_rate": ("float32", ()),
        "optimizer/_variables/1": ("float32", (2, 3)), "optimizer/_variables/2": ("float32", (2, 3)),
        "optimizer/_variables/3": ("float16", (4, 3)), "optimizer/_variables/4": ("float16", (4, 3))}
    assert values["net/step"] == 424760 and values["net/count"] == -5 and values["net/scalar"] == 3.25
    assert values["net/flags"].tolist() == [True, False] and values["net/pixels"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(values["net/wide"], np.linspace(0, 1, 4))
    np.testing.assert_array_equal(values["net/embedding"],
                                  (np.arange(6, dtype=np.float32) / 3).reshape(2, 3).astype(ml_dtypes.bfloat16))
    np.testing.assert_allclose(values["net/shared"], np.arange(6).reshape(2, 3) / 7 - 0.001, atol=1e-6)
    np.testing.assert_allclose(values["net/layers/1/kernel"], np.arange(12).reshape(4, 3) / 7 - 0.001, atol=2e-3)
    assert values["optimizer/_iterations"] == 1
    names = object_graph_names(prefix)
    assert names == {key + VALUE: key for key in TF_CHECKPOINT_KEYS[1:]}


def test_a_saved_models_list_keys_are_named_by_their_attribute_paths():
    prefix = FIXTURES / "tf_saved_model_variables" / "variables"
    names = object_graph_names(prefix)
    values = {names[key]: value for key, value in read_variables(prefix).items()}
    assert sorted(values) == ["_actor_network/_encoder/bias", "_actor_network/_encoder/kernel",
                              "_actor_network/_head/bias", "_actor_network/_head/kernel", "train_step"]
    assert list(read_variables(prefix))[:1] == ["model_variables/0" + VALUE]  # the keys themselves are not names
    np.testing.assert_array_equal(values["_actor_network/_head/kernel"], np.arange(9, dtype=np.float32).reshape(3, 3))
    np.testing.assert_array_equal(values["_actor_network/_encoder/bias"], np.full(3, 0.5, np.float32))


def test_a_policy_savers_flat_variable_list_gives_way_to_the_networks_attribute_paths():
    # TF-Agents' PolicySaver keys every variable model_variables/N, a path with fewer list indices than the
    # network's own _layers/0/kernel: the name that ends in the variable's attribute is the one given.
    prefix = FIXTURES / "tf_agents_policy_saver_variables" / "variables"
    listed = list_variables(prefix)
    names = object_graph_names(prefix)
    network = "_all_assets/_actor_network/"
    assert {names[key]: listed[key][1] for key in listed if key != OBJECT_GRAPH_KEY} == {
        network + "_layers/0/kernel": (2, 4), network + "_layers/0/bias": (4,),
        network + "_layers/1/kernel": (4, 3), network + "_layers/1/bias": (3,),
        network + "_output_tokens/kernel": (3, 1), network + "_output_tokens/bias": (1,), "train_step": ()}
    assert names["model_variables/0" + VALUE] == network + "_layers/0/kernel"


def test_tensorflow_reads_what_we_write_and_writes_the_same_bytes(tmp_path):
    tf = pytest.importorskip("tensorflow")
    tensors = every_dtype()
    tensors["strings"] = np.array([b"x", "ü".encode(), b""], dtype=object)
    for i in range(300):
        tensors[f"many/layer_{i:04d}/kernel"] = np.full((i % 3,), i, np.int32)
    write_tensor_bundle(tmp_path / "ours", tensors, block_size=512)
    reader = tf.train.load_checkpoint(str(tmp_path / "ours"))
    assert {name for name, _ in tf.train.list_variables(str(tmp_path / "ours"))} == set(tensors)
    for key, array in tensors.items():
        got = np.asarray(reader.get_tensor(key))
        if array.dtype.kind == "O":
            assert got.tolist() == array.tolist()
        else:
            assert got.shape == array.shape and got.tobytes() == array.tobytes(), key
    # SaveV2 given names in sorted order writes them at the same offsets: both files byte for byte the same.
    small = {key: tensors[key] for key in ("bfloat16", "float32/matrix", "float32/empty", "int64", "strings")}
    names = sorted(small)
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "tf"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(small[name]) for name in names])
    write_tensor_bundle(tmp_path / "same", small)
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / f"same{suffix}").read_bytes() == (tmp_path / f"tf{suffix}").read_bytes()


def test_we_read_what_tensorflow_writes(tmp_path):
    tf = pytest.importorskip("tensorflow")
    module = tf.Module()
    module.inner = tf.Module()
    module.inner.kernel = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    module.inner.steps = [tf.Variable(np.int64(3)), tf.Variable(tf.constant([1.0, 2.0], tf.bfloat16))]
    module.flags = tf.Variable([True, False])
    prefix = tf.train.Checkpoint(model=module).write(str(tmp_path / "ckpt"))
    listed = list_variables(prefix)
    assert [(name, list(shape)) for name, shape in tf.train.list_variables(prefix)] == \
        [(name, list(shape)) for name, (_, shape) in listed.items()]
    reader = tf.train.load_checkpoint(prefix)
    for key, array in read_variables(prefix).items():
        assert np.asarray(reader.get_tensor(key)).tobytes() == array.tobytes(), key
    assert object_graph_names(prefix) == {key: key.removesuffix(VALUE) for key in listed if key.endswith(VALUE)}
