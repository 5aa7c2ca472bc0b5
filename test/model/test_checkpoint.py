import pytest
import torch

from rt1_ros.model.checkpoint import CheckpointError, from_pretrained, save_pretrained
from rt1_ros.model.rt1 import RT1


def test_round_trip_gives_identical_logits(tiny_model, action_space, tmp_path):
    save_pretrained(tiny_model, tmp_path / "ckpt", action_space, extra={"step": 3})
    loaded, space, extra = from_pretrained(tmp_path / "ckpt")
    assert space == action_space and extra == {"step": 3}
    images, text = torch.rand(1, 6, 3, 96, 96), torch.randn(1, 384)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, text), tiny_model(images, text), rtol=0, atol=0)


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nowhere"):
        from_pretrained(tmp_path / "nowhere")


def test_truncated_weights_are_refused(tiny_model, action_space, tmp_path):
    path = save_pretrained(tiny_model, tmp_path / "ckpt", action_space) / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        from_pretrained(tmp_path / "ckpt")


def test_other_architecture_is_refused_with_the_mismatch(tiny_config, paper_config, action_space, tmp_path):
    save_pretrained(RT1(tiny_config), tmp_path / "ckpt", action_space)
    config_file = tmp_path / "ckpt" / "config.yaml"
    # Point the config at the paper architecture: the tensors no longer fit.
    paper = RT1(paper_config)
    save_pretrained(paper, tmp_path / "paper", action_space)
    config_file.write_text((tmp_path / "paper" / "config.yaml").read_text())
    with pytest.raises(CheckpointError, match="does not match the model architecture"):
        from_pretrained(tmp_path / "ckpt")
