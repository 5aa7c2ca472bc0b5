import pytest
import torch

from rt1_ros.model.text_encoder import TextEncoder


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
