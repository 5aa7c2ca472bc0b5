import importlib.util
import os
import sys
import types

import numpy as np
import pytest
import torch

from rt1_ros.model.text_encoder import (TextEncoder, TextEncoderConfig, TextEncoderWidthError, UnknownInstructionError,
                                        read_embedding_map)


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_bundled_model_gives_384d_embeddings_offline(encoder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vector = encoder.encode("pick up the red cube")
    assert vector.shape == (384,)
    assert vector.dtype == torch.float32
    assert torch.isfinite(vector).all() and vector.norm() > 0


def test_same_string_same_vector_and_different_strings_differ(encoder):
    a = encoder.encode("move near the blue cylinder")
    b = encoder.encode("move near the blue cylinder")
    c = encoder.encode("push the green cube left")
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    batch = encoder.encode(["move near the blue cylinder", "push the green cube left"])
    assert batch.shape == (2, 384)
    torch.testing.assert_close(batch[0], a)


def test_encoder_is_frozen(encoder):
    assert not any(p.requires_grad for p in encoder._model.parameters())


def write_npz_map(path, instructions, dim=512):
    vectors = np.stack([np.full(dim, i + 1, np.float32) / (i + 2) for i in range(len(instructions))])
    np.savez(path, instructions=np.array(instructions), embeddings=vectors)
    return dict(zip(instructions, vectors))


def test_precomputed_npz_embeddings_are_looked_up_by_exact_instruction(tmp_path):
    expected = write_npz_map(tmp_path / "use.npz", ["pick coke can", "move blue chip near apple"])
    encoder = TextEncoder(TextEncoderConfig(f"embeddings:{tmp_path / 'use.npz'}", embedding_dim=512))
    assert encoder.dimension == 512
    vector = encoder.encode("pick coke can")
    assert vector.shape == (512,) and vector.dtype == torch.float32
    assert torch.equal(vector, torch.from_numpy(expected["pick coke can"]))
    batch = encoder.encode(["move blue chip near apple", "pick coke can"])
    assert torch.equal(batch[1], vector)
    with pytest.raises(UnknownInstructionError, match=r"instruction 'pick Coke can' is not in the precomputed "
                                                      r"embeddings .*use\.npz \(2 instructions: 'pick coke can'"):
        encoder.encode("pick Coke can")


def test_a_batch_larger_than_the_cache_keeps_every_vector(tmp_path):
    instructions = [f"instruction {i}" for i in range(5)]
    expected = write_npz_map(tmp_path / "map.npz", instructions, dim=4)
    encoder = TextEncoder(TextEncoderConfig(f"embeddings:{tmp_path / 'map.npz'}", embedding_dim=4, cache_size=3))
    batch = encoder.encode(instructions)
    assert torch.equal(batch, torch.from_numpy(np.stack([expected[text] for text in instructions])))
    assert torch.equal(encoder.encode("instruction 0"), torch.from_numpy(expected["instruction 0"]))


def test_precomputed_yaml_embeddings(tmp_path):
    (tmp_path / "map.yaml").write_text('"open the drawer": [0.5, -1, 2]\n"close it": [1, 1, 1]\n')
    encoder = TextEncoder(TextEncoderConfig(f"embeddings:{tmp_path / 'map.yaml'}", embedding_dim=3))
    assert encoder.encode("open the drawer").tolist() == [0.5, -1.0, 2.0]


def test_every_source_of_the_wrong_width_is_refused_naming_both_widths(tmp_path):
    write_npz_map(tmp_path / "use.npz", ["pick coke can"])
    with pytest.raises(TextEncoderWidthError, match=r"embeddings:.*use\.npz gives 512-d embeddings, config "
                                                    r"expects 384"):
        TextEncoder(TextEncoderConfig(f"embeddings:{tmp_path / 'use.npz'}"))
    with pytest.raises(TextEncoderWidthError, match=r"bundled:all-MiniLM-L6-v2 gives 384-d embeddings, config "
                                                    r"expects 512"):
        TextEncoder(TextEncoderConfig(embedding_dim=512))


@pytest.mark.parametrize("content, message", [
    ("- just a list", "expected a mapping"),
    ('"a": [1, 2]\n"b": [1, 2, 3]\n', "vectors of different shapes"),
    ('"a": [1, .nan]\n', "NaN or infinity"),
    ('"a": ["x"]\n', "not a list of numbers"),
    ("{}", "holds no instructions"),
])
def test_malformed_embedding_maps_are_refused_naming_the_file(tmp_path, content, message):
    (tmp_path / "map.yaml").write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        read_embedding_map(tmp_path / "map.yaml")
    assert "map.yaml" in str(raised.value)


def test_npz_maps_need_both_arrays_of_matching_length(tmp_path):
    np.savez(tmp_path / "a.npz", instructions=np.array(["x", "y"]), embeddings=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"a\.npz: expected instructions \(N,\) str and embeddings \(N,E\)"):
        read_embedding_map(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", vectors=np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"b\.npz must hold arrays 'instructions'"):
        read_embedding_map(tmp_path / "b.npz")
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        TextEncoder(TextEncoderConfig(f"embeddings:{tmp_path / 'nowhere.npz'}", embedding_dim=4))


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_hub") is not None, reason="tensorflow_hub is installed")
def test_use_without_tensorflow_hub_says_what_to_install_or_use_instead(tmp_path):
    with pytest.raises(ImportError, match=r"use:.* needs tensorflow and tensorflow_hub.*embeddings:<file>"):
        TextEncoder(TextEncoderConfig(f"use:{tmp_path}", embedding_dim=512))


def test_use_source_loads_the_local_directory_with_tensorflow_hub(tmp_path, monkeypatch):
    # tensorflow_hub stood in for: what is checked is the wiring (local path, width probe, float32 tensors).
    loaded = []

    def load(handle):
        loaded.append(handle)
        return lambda texts: np.stack([np.full(512, len(text), np.float64) for text in texts])

    monkeypatch.setitem(sys.modules, "tensorflow_hub", types.SimpleNamespace(load=load))
    encoder = TextEncoder(TextEncoderConfig(f"use:{tmp_path}", embedding_dim=512))
    assert loaded == [str(tmp_path)]
    vectors = encoder.encode(["ab", "abc"])
    assert vectors.dtype == torch.float32 and vectors[:, 0].tolist() == [2, 3]
    with pytest.raises(TextEncoderWidthError, match="gives 512-d embeddings, config expects 384"):
        TextEncoder(TextEncoderConfig(f"use:{tmp_path}"))
    with pytest.raises(FileNotFoundError, match="universal-sentence-encoder-large/5"):
        TextEncoder(TextEncoderConfig(f"use:{tmp_path / 'missing'}", embedding_dim=512))


def test_universal_sentence_encoder_from_a_local_copy():
    pytest.importorskip("tensorflow_hub")
    directory = os.environ.get("RT1_USE_MODEL_DIR", "")
    if not directory:
        pytest.skip("set RT1_USE_MODEL_DIR to a local universal-sentence-encoder-large/5")
    encoder = TextEncoder(TextEncoderConfig(f"use:{directory}", embedding_dim=512))
    a, b = encoder.encode(["pick coke can", "open top drawer"])
    assert a.shape == (512,) and abs(float(a.norm()) - 1) < 1e-3 and not torch.allclose(a, b)
