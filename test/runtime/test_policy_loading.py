"""load_policy fits the text encoder to the network: its instruction width comes from the checkpoint."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from rt1_ros.model.checkpoint import save_pretrained
from rt1_ros.model.rt1 import RT1
from rt1_ros.model.text_encoder import TextEncoderWidthError, UnknownInstructionError
from rt1_ros.inference.options import InferenceOptions
from rt1_ros.runtime.policy_loading import PolicySource, load_policy
from rt1_ros.configuration.yaml_config import to_mapping


@pytest.fixture
def checkpoint_512(tmp_path, tiny_config, action_space):
    """A checkpoint taking 512-d instructions, as one converted from Google's release does (USE embeddings)."""
    torch.manual_seed(0)
    save_pretrained(RT1(dataclasses.replace(tiny_config, text_embedding_dim=512)), tmp_path / "ckpt", action_space)
    return tmp_path / "ckpt"


def test_a_512d_checkpoint_runs_with_a_512d_text_encoder(checkpoint_512, tmp_path):
    np.savez(tmp_path / "use.npz", instructions=np.array(["pick coke can"]),
             embeddings=np.linspace(-1, 1, 512, dtype=np.float32)[None])
    loaded = load_policy(PolicySource(checkpoint=str(checkpoint_512), device="cpu",
                                      text_encoder=f"embeddings:{tmp_path / 'use.npz'}",
                                      inference=InferenceOptions(backend="torch")))
    loaded.policy.set_instruction("pick coke can")
    size = loaded.policy.image_size
    step = loaded.policy.select_action(np.zeros((size, size, 3), np.uint8))
    assert np.isfinite(np.asarray(step.action, dtype=np.float64)).all()
    # An instruction the map lacks is refused by name and the previous one does not stay in force.
    with pytest.raises(UnknownInstructionError, match="'pick the coke can' is not in the precomputed embeddings"):
        loaded.policy.set_instruction("pick the coke can")
    assert loaded.policy.instruction is None


def test_a_text_encoder_of_another_width_is_refused_naming_both(checkpoint_512):
    with pytest.raises(TextEncoderWidthError, match=r"bundled:all-MiniLM-L6-v2 gives 384-d embeddings, config "
                                                    r"expects 512: the checkpoint .*ckpt \(step \?\) takes 512-d"):
        load_policy(PolicySource(checkpoint=str(checkpoint_512), device="cpu",
                                 inference=InferenceOptions(backend="torch")))



def test_a_misfit_is_refused_from_the_config_before_any_weights_are_read(checkpoint_512, tmp_path, action_space):
    """The width and the action space are checked on config.yaml alone: a node that cannot run the checkpoint says
    why at once, not after loading and exporting the network (seconds at the paper size)."""
    (checkpoint_512 / "model.safetensors").unlink()
    with pytest.raises(TextEncoderWidthError, match="gives 384-d embeddings, config expects 512"):
        load_policy(PolicySource(checkpoint=str(checkpoint_512), device="cpu"))
    mapping = to_mapping(action_space)
    mapping["num_bins"] = 128
    (tmp_path / "ranged.yaml").write_text(yaml.safe_dump(mapping))
    np.savez(tmp_path / "use.npz", instructions=np.array(["go"]), embeddings=np.ones((1, 512), np.float32))
    with pytest.raises(ValueError, match="num_bins 256 vs 128"):
        load_policy(PolicySource(checkpoint=str(checkpoint_512), device="cpu",
                                 action_space_file=str(tmp_path / "ranged.yaml"),
                                 text_encoder=f"embeddings:{tmp_path / 'use.npz'}"))

def test_an_action_space_file_may_remap_a_checkpoint_onto_the_robot_but_not_change_its_ranges(tmp_path, tiny_config,
                                                                                           action_space):
    """scale/offset are the robot's side and are taken; other ranges or bins would rescale every decoded token and
    are refused, naming each difference."""
    torch.manual_seed(0)
    save_pretrained(RT1(tiny_config), tmp_path / "ckpt", action_space)
    mapping = to_mapping(action_space)
    mapping["dimensions"][7].update(scale=2.0, offset=0.1)
    remapped = tmp_path / "remapped.yaml"
    remapped.write_text(yaml.safe_dump(mapping))
    loaded = load_policy(PolicySource(checkpoint=str(tmp_path / "ckpt"), device="cpu", action_space_file=str(remapped),
                                      inference=InferenceOptions(backend="torch")))
    assert loaded.action_space.dimensions[7].scale == 2.0 and loaded.action_space.dimensions[7].offset == 0.1
    mapping["dimensions"][0].update(low=-0.1)
    mapping["num_bins"] = 128
    ranged = tmp_path / "ranged.yaml"
    ranged.write_text(yaml.safe_dump(mapping))
    with pytest.raises(ValueError, match=r"decodes the checkpoint .* differently: num_bins 256 vs 128; arm_x "
                                         r"\[-0.05, 0.05\] vs arm_x \[-0.1, 0.05\]. Keep its num_bins"):
        load_policy(PolicySource(checkpoint=str(tmp_path / "ckpt"), device="cpu", action_space_file=str(ranged),
                                 inference=InferenceOptions(backend="torch")))
