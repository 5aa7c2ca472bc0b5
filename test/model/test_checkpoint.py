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


def alias_bomb(levels: int = 9) -> str:
    """'Billion laughs': each level a list of nine aliases of the level below (9**levels leaves)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("place", ["scalar field", "whole section"])
def test_yaml_alias_bomb_in_config_is_refused_at_once(tiny_model, action_space, tmp_path, place):
    import time

    directory = save_pretrained(tiny_model, tmp_path / "ckpt", action_space)
    config_file = directory / "config.yaml"
    text = config_file.read_text()
    if place == "scalar field":  # the case that hung: the type error's repr() expanded the bomb
        text = text.replace("image_size: 96", "image_size: *l8")
    else:
        text = text.replace("action_space:", "action_space: *l8\nunused:", 1)
    assert "*l8" in text
    config_file.write_text(alias_bomb() + text)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="anchors and aliases") as error:
        from_pretrained(directory)
    print(f"\nalias bomb ({place}) refused in {time.monotonic() - started:.3f} s")
    assert str(config_file) in str(error.value) and len(str(error.value)) < 2000


def test_a_huge_wrong_typed_value_is_reported_in_bounded_words(tiny_model, action_space, tmp_path):
    directory = save_pretrained(tiny_model, tmp_path / "ckpt", action_space)
    config_file = directory / "config.yaml"
    config_file.write_text(config_file.read_text().replace("image_size: 96", f"image_size: {list(range(20000))}"))
    with pytest.raises(CheckpointError, match="image_size: expected int, found list") as error:
        from_pretrained(directory)
    assert len(str(error.value)) < 2000


@pytest.mark.parametrize("name", ["model.safetensors", "config.yaml"])
def test_checkpoint_file_that_is_a_device_is_named_as_such_not_as_missing(tiny_model, action_space, tmp_path, name):
    directory = save_pretrained(tiny_model, tmp_path / "ckpt", action_space)
    (directory / name).unlink()
    (directory / name).symlink_to("/dev/zero")
    with pytest.raises(CheckpointError) as error:
        from_pretrained(directory)
    message = str(error.value)
    assert "character device" in message and "/dev/zero" in message and "not found" not in message
    assert str(directory / name) in message


def test_dangling_symlink_is_reported_as_missing_with_its_target(tiny_model, action_space, tmp_path):
    directory = save_pretrained(tiny_model, tmp_path / "ckpt", action_space)
    (directory / "model.safetensors").unlink()
    (directory / "model.safetensors").symlink_to(tmp_path / "gone.safetensors")
    with pytest.raises(CheckpointError, match="not found.*gone.safetensors"):
        from_pretrained(directory)
