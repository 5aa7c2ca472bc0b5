"""The ONNX Runtime and OpenVINO backends: the torch reference's tokens on the shipped trained model over
consecutive frames of a simulator episode, the export cache (hit, miss on a changed checkpoint, a damaged file,
a read-only checkpoint), `rt1-export`, and the fall-back to torch. No timing is asserted."""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys

import numpy as np
import pytest
import torch

from rt1_ros.bench.fixtures import simulator_frames
from rt1_ros.model.checkpoint import from_pretrained, save_pretrained
from rt1_ros.model.rt1 import RT1
from rt1_ros.inference import onnx_export, paths
from rt1_ros.inference import options as inference_options
from rt1_ros.inference.image_decoding import resize_for_model
from rt1_ros.inference.options import AUTO_CPU_BACKEND, AUTO_CPU_BACKEND_LARGE, InferenceOptions
from rt1_ros.inference.parity import input_dependence, reference_and_candidate_tokens
from rt1_ros.inference.paths import build_path, TorchPath
from rt1_ros.inference.onnx_export import FixedGridAveragePool, cached_export

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def private_export_cache(tmp_path, monkeypatch):
    """Exports of models without a checkpoint go to this test's folder, not the user's cache."""
    monkeypatch.setenv(onnx_export.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path))
BACKENDS = ("onnxruntime", "openvino")
EPISODE_FRAMES = 6


@pytest.fixture(scope="module")
def episode_frames(trained_model) -> torch.Tensor:
    """(N,3,S,S): the head camera over the first steps of a scripted pick episode (a seed no training used)."""
    size = trained_model.config.image_size
    rgb = np.stack([resize_for_model(image, size) for image in simulator_frames(EPISODE_FRAMES)])
    return torch.from_numpy(rgb).movedim(-1, -3).float().div(255.0)


@pytest.fixture(scope="module")
def trained_checkpoint(trained_model, tmp_path_factory):
    """A private copy of the shipped checkpoint, so exports made here never land beside models/rt1_sim."""
    directory = tmp_path_factory.mktemp("rt1_sim")
    for name in ("model.safetensors", "config.yaml"):
        shutil.copy(trained_model.checkpoint_directory / name, directory / name)
    model, _, _ = from_pretrained(directory)
    return model


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_gives_the_torch_tokens_over_a_sim_episode(trained_checkpoint, episode_frames, backend):
    model = trained_checkpoint
    conditioning = model.embed_instruction(torch.randn(1, 384, generator=torch.Generator().manual_seed(1))).detach()
    # Not vacuous: the trained model's logits move with the frame far more than any backend's rounding.
    dependence = input_dependence(model, episode_frames, conditioning)
    assert dependence > 1e-1
    path = build_path(model, InferenceOptions(backend=backend, num_threads=1), CPU)
    assert type(path).__name__ == {"onnxruntime": "OnnxRuntimePath", "openvino": "OpenVinoPath"}[backend]
    assert path.options.backend == backend
    reference, candidate, worst = reference_and_candidate_tokens(model, path, episode_frames, conditioning)
    assert worst < 1e-3 and dependence > 100 * worst
    assert torch.equal(reference, candidate)
    # The frames differ enough that the torch reference itself does not answer the same at every step.
    assert len({tuple(row) for row in reference.tolist()}) > 1


def test_a_backend_that_computes_something_else_is_caught(trained_checkpoint, episode_frames):
    """The check above can fail: a path whose encoder sees a slightly different frame gives other tokens."""
    model = trained_checkpoint
    conditioning = model.embed_instruction(torch.zeros(1, 384)).detach()
    path = build_path(model, InferenceOptions(backend="onnxruntime", num_threads=1), CPU)
    encode = path.encode_frame
    path.encode_frame = lambda frame, cond: encode(frame.flip(-1), cond)
    reference, candidate, worst = reference_and_candidate_tokens(model, path, episode_frames, conditioning)
    assert worst > 1e-2 and not torch.equal(reference, candidate)


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model, action_space):
    save_pretrained(tiny_model, tmp_path / "checkpoint", action_space)
    return tmp_path / "checkpoint"


def test_export_is_reused_until_the_checkpoint_changes(tiny_checkpoint, tmp_path, action_space):
    model, _, _ = from_pretrained(tiny_checkpoint)
    first = cached_export(model, cache=tmp_path / "cache")
    assert first.created and first.directory == tiny_checkpoint / "onnx"
    assert first.encoder.is_file() and first.transformer.is_file()
    again = cached_export(from_pretrained(tiny_checkpoint)[0], cache=tmp_path / "cache")
    assert not again.created and again.key == first.key
    encoder_bytes = first.encoder.read_bytes()

    with torch.no_grad():  # new weights in the same directory: a new key, exported again in place
        model.action_head.heads[0].bias.add_(1.0)
    save_pretrained(model, tiny_checkpoint, action_space)
    changed = cached_export(from_pretrained(tiny_checkpoint)[0], cache=tmp_path / "cache")
    assert changed.created and changed.key != first.key and changed.directory == first.directory
    assert changed.encoder.read_bytes() == encoder_bytes  # only the heads changed
    assert not (tmp_path / "cache").exists()


def test_a_model_changed_after_loading_leaves_its_checkpoints_export_alone(tiny_checkpoint, tmp_path):
    model, _, _ = from_pretrained(tiny_checkpoint)
    on_disk = cached_export(model, cache=tmp_path / "cache")
    with torch.no_grad():
        model.action_head.heads[0].bias.add_(1.0)  # fine-tuned in memory; the file still holds the old weights
    changed = cached_export(model, cache=tmp_path / "cache")
    assert changed.created and changed.directory == tmp_path / "cache" / changed.key[:32]
    assert not cached_export(from_pretrained(tiny_checkpoint)[0], cache=tmp_path / "cache").created
    assert on_disk.directory == tiny_checkpoint / "onnx"


def test_a_damaged_export_is_redone(tiny_checkpoint, tmp_path):
    model, _, _ = from_pretrained(tiny_checkpoint)
    export = cached_export(model, cache=tmp_path / "cache")
    export.transformer.write_bytes(export.transformer.read_bytes()[:1000])  # truncated
    assert cached_export(model, cache=tmp_path / "cache").created
    assert not cached_export(model, cache=tmp_path / "cache").created


def test_a_read_only_checkpoint_exports_into_the_cache_keyed_by_its_hash(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "writable", lambda directory: directory.is_relative_to(tmp_path / "cache"))
    model, _, _ = from_pretrained(tiny_checkpoint)
    export = cached_export(model, cache=tmp_path / "cache")
    assert export.created and export.directory == tmp_path / "cache" / export.key[:32]
    assert not (tiny_checkpoint / "onnx").exists()
    assert not cached_export(model, cache=tmp_path / "cache").created


def test_rt1_export_command(tiny_checkpoint, tmp_path, capsys):
    assert onnx_export.main([str(tiny_checkpoint)]) == 0
    assert "exported" in capsys.readouterr().out
    assert onnx_export.main([str(tiny_checkpoint)]) == 0
    output = capsys.readouterr().out
    assert "up to date" in output and str(tiny_checkpoint / "onnx" / onnx_export.ENCODER_FILE) in output
    assert onnx_export.main([str(tmp_path / "missing")]) == 2


def test_the_backends_run_a_model_without_a_checkpoint_from_the_cache(tiny_model, tmp_path):
    path = build_path(tiny_model, InferenceOptions(backend="openvino", export_cache=True), CPU)
    assert path.export.directory.parent == tmp_path
    frame, conditioning = torch.rand(1, 3, 96, 96), torch.randn(1, tiny_model.config.embed_dim)
    with torch.no_grad():
        torch.testing.assert_close(path.encode_frame(frame, conditioning),
                                   tiny_model.encode_frame(frame, conditioning), atol=1e-4, rtol=1e-4)


def test_by_default_a_backend_leaves_no_files_and_uses_an_export_made_ahead(tiny_checkpoint, tmp_path):
    """A running node writes nothing beside its checkpoint or in the cache (test_security.py checks the node); an
    export that rt1-export made is used as it is."""
    model, _, _ = from_pretrained(tiny_checkpoint)
    before = sorted(tmp_path.rglob("*"))
    path = build_path(model, InferenceOptions(backend="onnxruntime"), CPU)
    assert path.export.created and not path.export.directory.exists()  # exported to $TMPDIR, removed once loaded
    assert sorted(tmp_path.rglob("*")) == before
    frame, conditioning = torch.rand(1, 3, 96, 96), torch.randn(1, model.config.embed_dim)
    with torch.no_grad():  # the sessions loaded before the files went
        window = torch.stack([model.encode_frame(frame, conditioning)] * 6, 1)
        torch.testing.assert_close(path.encode_frame(frame, conditioning), window[:, 0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(path.logits(window), model.logits_from_frame_tokens(window), atol=1e-4, rtol=1e-4)
    assert onnx_export.main([str(tiny_checkpoint)]) == 0
    ahead = build_path(model, InferenceOptions(backend="openvino"), CPU)
    assert not ahead.export.created and ahead.export.directory == tiny_checkpoint / "onnx"


def test_a_missing_runtime_falls_back_to_torch_with_one_warning(tiny_model, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with caplog.at_level(logging.WARNING, logger=paths.__name__):
        path = build_path(tiny_model, InferenceOptions(backend="openvino"), CPU)
    assert type(path) is TorchPath and path.options.backend == "torch"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "openvino" in warnings[0].getMessage() and "torch" in warnings[0].getMessage()


def test_auto_without_openvino_falls_back_to_onnxruntime_not_torch(tiny_model, monkeypatch, caplog):
    monkeypatch.setattr(inference_options.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(inference_options, "AUTO_LARGE_IMAGE_SIZE", tiny_model.config.image_size)  # "large"
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with caplog.at_level(logging.WARNING, logger=paths.__name__):
        path = build_path(tiny_model, InferenceOptions(), CPU)
    assert path.options.backend == "onnxruntime" and type(path) is not TorchPath
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'openvino' is unavailable" in warnings[0] and "running onnxruntime" in warnings[0]


def test_auto_picks_the_measured_backend_for_the_frame_size_on_x86_and_torch_elsewhere(monkeypatch):
    options = InferenceOptions()
    assert options.backend == "auto"
    monkeypatch.setattr(inference_options.platform, "machine", lambda: "x86_64")
    assert options.backend_on(CPU, 128) == AUTO_CPU_BACKEND == "onnxruntime"  # the shipped model's frames
    assert options.backend_on(CPU, 300) == AUTO_CPU_BACKEND_LARGE == "openvino"  # the paper size's
    assert options.backend_on(torch.device("cuda")) == "torch"
    assert InferenceOptions(backend="openvino").backend_on(torch.device("cuda")) == "torch"
    monkeypatch.setattr(inference_options.platform, "machine", lambda: "aarch64")
    assert options.backend_on(CPU) == "torch"
    with pytest.raises(ValueError, match="backend"):
        InferenceOptions(backend="tensorrt")
    with pytest.raises(ValueError, match="openvino_dtype"):
        InferenceOptions(openvino_dtype="float16")


@pytest.mark.parametrize("side, grid", [(10, 9), (8, 8), (19, 9), (7, 3)])
def test_exportable_pooling_is_adaptive_average_pooling(side, grid):
    x = torch.randn(2, 5, side, side)
    torch.testing.assert_close(FixedGridAveragePool(grid)(x), torch.nn.AdaptiveAvgPool2d(grid)(x))


def test_an_encoder_whose_grid_does_not_divide_its_feature_map_exports_and_agrees(tiny_config, tmp_path):
    """The paper size pools 10×10 to 9×9, which the TorchScript exporter refuses as AdaptiveAvgPool2d; the export
    swaps in averaging matrices. Tiny with a 5×5 grid over its 6×6 map is the same case, small."""
    config = dataclasses.replace(tiny_config, backbone=dataclasses.replace(tiny_config.backbone, token_grid=5))
    torch.manual_seed(0)
    model = RT1(config).eval()
    path = build_path(model, InferenceOptions(backend="onnxruntime", export_cache=True), CPU)
    assert path.export.directory.parent == tmp_path
    frame, conditioning = torch.rand(1, 3, 96, 96), torch.randn(1, config.embed_dim)
    with torch.no_grad():
        torch.testing.assert_close(path.encode_frame(frame, conditioning), model.encode_frame(frame, conditioning),
                                   atol=1e-4, rtol=1e-4)


def test_openvino_runs_fp32_unless_bf16_is_asked_for(tiny_model):
    """OpenVINO would pick bf16 by itself on CPUs with bf16 units; tokens are only checked at fp32 (on the trained
    model and simulator frames bf16 agreed on 85-99 % of the dimensions, not all: an opt-in only)."""
    assert build_path(tiny_model, InferenceOptions(backend="openvino"), CPU).precision == "f32"
    reduced = build_path(tiny_model, InferenceOptions(backend="openvino", openvino_dtype="bfloat16"), CPU)
    assert reduced.precision in ("bf16", "f32")  # f32 where the CPU cannot run bf16 at all
    assert InferenceOptions(backend="openvino", openvino_dtype="bfloat16").describe(CPU) == "openvino bf16"


def test_openvino_backend_starts_no_telemetry_and_writes_nothing_at_home(tmp_path):
    """`import openvino` imports its converter, whose telemetry writes ~/intel (and may send usage data): the
    backend imports the runtime without it. In a fresh process, since this one may have imported openvino."""
    import subprocess

    home, temporary = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temporary.mkdir()
    script = ("import sys, torch\nfrom rt1_ros.model.rt1 import RT1, RT1Config\n"
              "from rt1_ros.inference.options import InferenceOptions\nfrom rt1_ros.inference.paths import build_path\n"
              "path = build_path(RT1(RT1Config.from_yaml('tiny')).eval(), InferenceOptions(backend='openvino'), "
              "torch.device('cpu'))\nprint(type(path).__name__, 'openvino.tools.ovc' in sys.modules)\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "XDG_CACHE_HOME", "RT1_ONNX_CACHE")}
    completed = subprocess.run([sys.executable, "-c", script], env=dict(environment, HOME=str(home),
                               TMPDIR=str(temporary)), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["OpenVinoPath", "False"]
    assert list(home.rglob("*")) == [] and list(temporary.rglob("*")) == []


def test_onnxruntime_backend_starts_no_telemetry_and_writes_nothing_at_home(tmp_path):
    """onnxruntime's PyPI wheels send telemetry on Linux and persist a device id in
    ~/.cache/Microsoft/DeveloperTools/.onnxruntime from the first import (torch's exporter imports it): importing
    rt1_ros turns that off. In a fresh process, since this one has started onnxruntime already."""
    import subprocess

    home, temporary, cache = tmp_path / "home", tmp_path / "tmp", tmp_path / "cache"
    for folder in (home, temporary, cache):
        folder.mkdir()
    script = ("import os, torch\nfrom rt1_ros.model.rt1 import RT1, RT1Config\n"
              "from rt1_ros.inference.options import InferenceOptions\nfrom rt1_ros.inference.paths import build_path\n"
              "path = build_path(RT1(RT1Config.from_yaml('tiny')).eval(), InferenceOptions(backend='onnxruntime'), "
              "torch.device('cpu'))\npath.logits(path.encode_frame(torch.rand(1, 3, 96, 96), torch.rand(1, 128))"
              "[:, None].expand(1, 6, 8, 128))\nprint(type(path).__name__, os.environ['ORT_DISABLE_TELEMETRY'])\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "RT1_ONNX_CACHE", "ORT_DISABLE_TELEMETRY")}
    completed = subprocess.run([sys.executable, "-c", script], env=dict(environment, HOME=str(home),
                               TMPDIR=str(temporary), XDG_CACHE_HOME=str(cache)), capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["OnnxRuntimePath", "1"]
    assert [list(folder.rglob("*")) for folder in (home, temporary, cache)] == [[], [], []]
