"""rt1-convert on small checkpoints laid out as the released RT-1's (rt1main's ckpt-424760: `agent/_actor_network/`
+ Keras' `layer_with_weights-N` EfficientNet, Keras MultiHeadAttention, FiLM Denses), written with rt1_ros's own
tensor-bundle writer: every variable kind converts and the converted model computes what the written one did;
unmapped and missing variables are named; optimizer slots and counters are skipped; an LFS pointer is refused.

`released_variables` writes a model out in the released layout. It is the converter's inverse written separately,
so a round trip checks the two agree on names, shapes and the order of every axis that has one; the FiLM
mult/add order and the attention's layout are also checked against hand-built values below.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from rt1_ros.convert.cli import main as convert_main
from rt1_ros.convert.official_checkpoint import ConversionError, convert, efficientnet_layers
from rt1_ros.convert.tensor_bundle import GitLfsPointerError, write_tensor_bundle
from rt1_ros.model.checkpoint import from_pretrained
from rt1_ros.model.rt1 import RT1, RT1Config
from rt1_ros.configuration.yaml_config import to_mapping

NETWORK = "agent/_actor_network/"
NET = NETWORK + "_image_tokenizer/_tokenizer/net/"
# The shapes of rt1main's variable names (every one of its 733 matches one of these).
RELEASED_NAME_PATTERNS = [re.compile(NETWORK + p) for p in (
    r"_image_tokenizer/_tokenizer/net/layer_with_weights-\d+/(kernel|bias|depthwise_kernel|gamma|beta|moving_mean|"
    r"moving_variance|mean|variance|count|_projection_(add|mult)/(kernel|bias))",
    r"_image_tokenizer/_tokenizer/(conv1x1/kernel|film_layer/_projection_(add|mult)/(kernel|bias))",
    r"_image_tokenizer/_token_learner/(layernorm/(beta|gamma)|mlp/_(hidden|output)_layer/(kernel|bias))",
    r"_transformer/_layers/\d+/(ff/(kernel|bias)|layernorm[12]/(beta|gamma)|"
    r"mha1/_(query|key|value|output)_dense/(kernel|bias))",
    r"_transformer/_(output_tokens|position_emb|token_emb)/(kernel|bias)",
    r"_action_token_emb/(kernel|bias)")]


def released_variables(model: RT1) -> dict[str, np.ndarray]:
    """The model's tensors under the released checkpoint's names and layouts (TF: HWIO, [in,out], [D,H,d])."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def film(name: str, prefix: str) -> None:
        weight, bias = state[f"{prefix}.projection.weight"], state[f"{prefix}.projection.bias"]
        half = len(bias) // 2
        out[f"{name}/_projection_mult/kernel"], out[f"{name}/_projection_add/kernel"] = weight[:half].T, weight[half:].T
        out[f"{name}/_projection_mult/bias"], out[f"{name}/_projection_add/bias"] = bias[:half], bias[half:]

    for index, (kind, prefix) in enumerate(efficientnet_layers(model.image_encoder)):
        name = f"{NET}layer_with_weights-{index}"
        if kind == "normalization":
            out[f"{name}/mean"], out[f"{name}/variance"] = state[f"{prefix}.input_mean"], state[
                f"{prefix}.input_variance"]
            out[f"{name}/count"] = np.array(0, dtype=np.int64)
        elif kind in ("conv", "conv_bias"):
            out[f"{name}/kernel"] = state[f"{prefix}.weight"].transpose(2, 3, 1, 0)
            if kind == "conv_bias":
                out[f"{name}/bias"] = state[f"{prefix}.bias"]
        elif kind == "depthwise":
            out[f"{name}/depthwise_kernel"] = state[f"{prefix}.weight"].transpose(2, 3, 0, 1)
        elif kind == "batch_norm":
            for tf_name, torch_name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                                        ("moving_variance", "running_var")):
                out[f"{name}/{tf_name}"] = state[f"{prefix}.{torch_name}"]
        else:
            film(name, prefix)
    tokenizer = NETWORK + "_image_tokenizer/_tokenizer"
    out[f"{tokenizer}/conv1x1/kernel"] = state["image_encoder.token_projection.weight"].transpose(2, 3, 1, 0)
    film(f"{tokenizer}/film_layer", "image_encoder.token_film")

    def dense(name: str, prefix: str) -> None:
        out[f"{name}/kernel"], out[f"{name}/bias"] = state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]

    def norm(name: str, prefix: str) -> None:
        out[f"{name}/gamma"], out[f"{name}/beta"] = state[f"{prefix}.weight"], state[f"{prefix}.bias"]

    learner = NETWORK + "_image_tokenizer/_token_learner"
    norm(f"{learner}/layernorm", "token_learner.norm")
    dense(f"{learner}/mlp/_hidden_layer", "token_learner.mlp.0")
    dense(f"{learner}/mlp/_output_layer", "token_learner.mlp.2")
    transformer = NETWORK + "_transformer"
    dense(f"{transformer}/_token_emb", "transformer.token_embedding")
    positions = state["transformer.position_embedding"]
    out[f"{transformer}/_position_emb/bias"] = np.full(positions.shape[1], 0.25, dtype=np.float32)
    out[f"{transformer}/_position_emb/kernel"] = positions - np.float32(0.25)
    heads, head_dim = model.config.transformer.num_heads, model.transformer.layers[0].attention.head_dim
    for i in range(len(model.transformer.layers)):
        name, prefix = f"{transformer}/_layers/{i}", f"transformer.layers.{i}"
        norm(f"{name}/layernorm1", f"{prefix}.attention_norm")
        norm(f"{name}/layernorm2", f"{prefix}.ffn_norm")
        dense(f"{name}/ff", f"{prefix}.ffn")
        qkv_weight = state[f"{prefix}.attention.qkv.weight"].reshape(3, heads, head_dim, -1)
        qkv_bias = state[f"{prefix}.attention.qkv.bias"].reshape(3, heads, head_dim)
        for part, layer in enumerate(("_query_dense", "_key_dense", "_value_dense")):
            out[f"{name}/mha1/{layer}/kernel"] = qkv_weight[part].transpose(2, 0, 1)  # [D,H,d]
            out[f"{name}/mha1/{layer}/bias"] = qkv_bias[part]
        out_weight = state[f"{prefix}.attention.out.weight"]  # (D, H·d)
        out[f"{name}/mha1/_output_dense/kernel"] = out_weight.T.reshape(heads, head_dim, -1)
        out[f"{name}/mha1/_output_dense/bias"] = state[f"{prefix}.attention.out.bias"]
    dense(f"{transformer}/_output_tokens", "action_head.heads.0")
    dim, bins = model.config.embed_dim, model.config.num_bins
    out[NETWORK + "_action_token_emb/kernel"] = np.ones((bins, dim), dtype=np.float32)  # zeroed in the network
    out[NETWORK + "_action_token_emb/bias"] = np.ones(dim, dtype=np.float32)
    return {k: np.array(v, order="C") for k, v in out.items()}


def with_training_state(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plus what a whole-agent tf.train.Checkpoint also holds: Adam slots, the optimizer's own, counters."""
    extra = {"global_step": np.array(424760, dtype=np.int64), "save_counter": np.array(3, dtype=np.int64),
             "agent/_actor_optimizer/iter": np.array(424760, dtype=np.int64),
             "agent/_actor_optimizer/learning_rate": np.array(1e-4, dtype=np.float32)}
    for name, value in list(variables.items())[:5]:
        extra[f"{name}/.OPTIMIZER_SLOT/agent/_actor_optimizer/m"] = np.zeros_like(value)
    return {**variables, **extra}


@pytest.fixture(scope="module")
def written(small_official_model):
    return small_official_model


@pytest.fixture
def bundle(written, tmp_path):
    prefix = tmp_path / "ckpt-424760"
    write_tensor_bundle(prefix, with_training_state(released_variables(written)))
    return prefix


def inputs(config: RT1Config, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    height, width = config.frame_size
    return (torch.rand(2, config.num_frames, 3, height, width, generator=generator),
            torch.randn(2, config.text_embedding_dim, generator=generator))


def test_the_written_names_follow_the_released_checkpoint(written):
    names = released_variables(written)
    unmatched = [n for n in names if not any(p.fullmatch(n) for p in RELEASED_NAME_PATTERNS)]
    assert not unmatched
    assert names[NET + "layer_with_weights-3/depthwise_kernel"].shape == (3, 3, 8, 1)  # block 1a, after the stem


def test_a_converted_checkpoint_computes_what_was_written(written, bundle):
    model, conversion = convert(bundle, written.config)
    images, text = inputs(written.config)
    with torch.no_grad():
        expected, got = written(images, text), model(images, text)
        other = written(inputs(written.config, seed=5)[0], text)
    assert (other - expected).abs().max() > 1e-2  # other frames move the logits 1000× the tolerance below
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert conversion.step is not None
    assert set(conversion.skipped.values()) == {"optimizer state", "counter"}
    assert not any("OPTIMIZER" in name for name in conversion.mapped)


def test_film_mult_and_add_and_the_attention_layout_are_read_as_keras_defines_them(written, bundle, tmp_path):
    variables = released_variables(written)
    film = NET + "layer_with_weights-9"  # block 1a's FiLM (8 channels)
    variables[f"{film}/_projection_mult/kernel"] = np.zeros((32, 8), np.float32)
    variables[f"{film}/_projection_mult/bias"] = np.full(8, 2.0, np.float32)  # (1 + 2) * x
    variables[f"{film}/_projection_add/kernel"] = np.zeros((32, 8), np.float32)
    variables[f"{film}/_projection_add/bias"] = np.arange(8, dtype=np.float32)
    mha = NETWORK + "_transformer/_layers/0/mha1"
    query = np.zeros((40, 2, 24), np.float32)
    query[5, 1, 7] = 1.0  # head 1, feature 7 of the query reads input channel 5
    variables[f"{mha}/_query_dense/kernel"] = query
    write_tensor_bundle(tmp_path / "edited", variables)
    model, _ = convert(tmp_path / "edited", written.config)
    film_layer = model.image_encoder.films[0]
    x = torch.ones(1, 8, 2, 2)
    torch.testing.assert_close(film_layer(x, torch.randn(1, 32))[0, :, 0, 0], 3.0 + torch.arange(8.0))
    qkv = model.transformer.layers[0].attention.qkv.weight
    assert qkv[24 + 7, 5] == 1.0 and qkv[:48].abs().sum() == 1.0  # query rows: head-major, 24 per head


def test_unmapped_and_missing_variables_are_each_named_with_shapes(written, tmp_path):
    variables = released_variables(written)
    del variables[NETWORK + "_transformer/_layers/1/ff/bias"]
    del variables[NET + "layer_with_weights-4/moving_variance"]
    variables[NETWORK + "_transformer/_layers/1/ff2/kernel"] = np.zeros((40, 40), np.float32)
    variables[NETWORK + "_image_tokenizer/_tokenizer/extra/kernel"] = np.zeros((3, 4), np.float32)
    write_tensor_bundle(tmp_path / "ckpt-1", variables)
    with pytest.raises(ConversionError) as error:
        convert(tmp_path / "ckpt-1", written.config)
    message = str(error.value)
    assert "_transformer/_layers/1/ff2/kernel [40, 40]" in message
    assert "_image_tokenizer/_tokenizer/extra/kernel [3, 4]" in message
    assert "transformer.layers.1.ffn.bias (40,)" in message
    assert "image_encoder.blocks.0.depthwise_bn.running_var (8,)" in message


def test_a_shape_mismatch_names_the_variable_and_both_shapes(written, tmp_path):
    variables = released_variables(written)
    variables[NETWORK + "_transformer/_layers/0/ff/kernel"] = np.zeros((40, 30), np.float32)
    write_tensor_bundle(tmp_path / "ckpt-1", variables)
    with pytest.raises(ConversionError, match=r"_layers/0/ff/kernel \(40, 30\) -> transformer.layers.0.ffn.weight: "
                                              r"model needs \(40, 40\), checkpoint gives \(30, 40\)"):
        convert(tmp_path / "ckpt-1", written.config)


def test_a_git_lfs_pointer_is_refused_with_how_to_get_the_data(written, bundle):
    data = bundle.with_name(bundle.name + ".data-00000-of-00001")
    data.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 423721772\n")
    with pytest.raises(GitLfsPointerError, match="git lfs"):
        convert(bundle, written.config)


def test_rt1_convert_writes_a_checkpoint_that_loads_with_its_release_recorded(written, bundle, tmp_path, capsys):
    config_file = tmp_path / "model.yaml"
    import yaml

    config_file.write_text(yaml.safe_dump({"small_official": to_mapping(written.config)}))
    output = tmp_path / "converted"
    assert convert_main([str(bundle.with_suffix(".index")), str(output), "--model-size", "small_official",
                         "--model-config", str(config_file)]) == 0
    assert "step 424760" in capsys.readouterr().out
    model, action_space, extra = from_pretrained(output)
    images, text = inputs(written.config, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(model(images, text), written(images, text), rtol=0, atol=1e-5)
    assert action_space.rounding == "truncate"
    # Released closedness -1 (open) .. +1 (close) onto the node's 0 .. 1; the other units wait for calibration.
    assert [(d.name, d.scale, d.offset) for d in action_space.dimensions if (d.scale, d.offset) != (1, 0)] == [
        ("gripper", 0.5, 0.5)]
    assert extra["converted_from"]["step"] == 424760
    assert extra["converted_from"]["action_bounds"]["base_yaw"] == pytest.approx([-np.pi, np.pi])
    assert convert_main([str(tmp_path / "nothing"), str(tmp_path / "out")]) == 1


def test_the_transformer_is_sized_from_the_checkpoint(written, bundle):
    """rt1multirobot's transformer is wider and deeper than rt1main's: the converter reads layers, width, heads
    and head width from the shapes and keeps the named config's encoder."""
    base = dataclasses.replace(written.config, transformer=dataclasses.replace(
        written.config.transformer, num_layers=5, num_heads=4, head_dim=16, width=0, ffn_dim=32))
    model, _ = convert(bundle, base)
    assert model.config == written.config
