"""ONNX exports of a trained RT-1's two control-step calls, cached per checkpoint: what `rt1-export` writes and the
onnxruntime / OpenVINO backends (`rt1_ros.inference.onnx_backends`) load.

    rt1-export CHECKPOINT_DIR [--cache-dir DIR] [--force]
    python -m rt1_ros.inference.onnx_export CHECKPOINT_DIR

Two files, static shapes, batch 1 (a control step encodes one frame):
- ``frame_encoder.onnx``: frame (1,3,h,w) float32 in [0,1], conditioning (1,D) -> tokens (1,K,D): the
  FiLM-EfficientNet and the TokenLearner (`RT1.encode_frame`);
- ``transformer.onnx``: window (1,T,K,D) -> logits (1,11,bins): the causal transformer and the action heads
  (`RT1.logits_from_frame_tokens`).

They go beside the checkpoint in ``<checkpoint>/onnx/`` when that directory is writable, else into the cache
(``$RT1_ONNX_CACHE``, else ``$XDG_CACHE_HOME/rt1_ros/onnx``, else ``~/.cache/rt1_ros/onnx``) under the key; a valid
export in either place is used, so one made before installing a checkpoint read-only is found there. The
key is a hash of the weights as loaded from model.safetensors, of the model config and of the export recipe
(exporter version, opset), so a changed checkpoint, config or torch gets a new export and an unchanged one is
reused. ``export.json`` holds the key and each file's sha256, checked on every load, so a truncated or edited file
is re-exported rather than run.

Only `rt1-export`, and a backend whose options ask for it (``export_cache``, ROS parameter
``inference_export_cache``), write the cache. By default a backend uses a valid cached export when there is one and
otherwise exports into a temporary folder that is removed once the runtime has loaded it, so a running node writes
nothing beside its checkpoint or in the home folder (test/test_security.py) and works on a read-only install.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from rt1_ros.model.rt1 import RT1, RT1Config
from rt1_ros.configuration.yaml_config import to_mapping

FORMAT_VERSION = 2  # bump when what is exported changes (graph boundaries, pooling, folding, input size), to re-export
OPSET = 17
ENCODER_FILE = "frame_encoder.onnx"
TRANSFORMER_FILE = "transformer.onnx"
MANIFEST_FILE = "export.json"
CACHE_ENVIRONMENT_VARIABLE = "RT1_ONNX_CACHE"


@dataclass(frozen=True)
class OnnxExport:
    """A complete, verified export: its directory, its two files and the key it was made for."""

    directory: Path
    key: str
    created: bool  # False: found in the cache

    @property
    def encoder(self) -> Path:
        return self.directory / ENCODER_FILE

    @property
    def transformer(self) -> Path:
        return self.directory / TRANSFORMER_FILE


class FixedGridAveragePool(nn.Module):
    """AdaptiveAvgPool2d to a g×g grid as two averaging matrices, for a fixed input size.

    Why: the TorchScript ONNX exporter refuses adaptive pooling when g does not divide the feature map (the paper
    size pools 10×10 to 9×9). Each output cell averages the same rows and columns as PyTorch's adaptive pooling
    (start floor(i·H/g), end ceil((i+1)·H/g)), so P_h · x · P_wᵀ is the same sums, in another order."""

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid

    @staticmethod
    def averaging_matrix(size: int, grid: int) -> torch.Tensor:
        matrix = torch.zeros(grid, size)
        for i in range(grid):
            start, end = (i * size) // grid, -((-(i + 1) * size) // grid)
            matrix[i, start:end] = 1.0 / (end - start)
        return matrix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])  # static while tracing: the matrices become constants
        rows = self.averaging_matrix(height, self.grid).to(x)
        columns = self.averaging_matrix(width, self.grid).to(x)
        return torch.matmul(torch.matmul(rows, x), columns.t())


class FrameEncoderGraph(nn.Module):
    def __init__(self, model: RT1) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frame(frame, conditioning)


class TransformerGraph(nn.Module):
    def __init__(self, model: RT1) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.model.logits_from_frame_tokens(window)


def export_key(model: RT1) -> str:
    return weights_key(model.config, model.state_dict())


def weights_key(config: RT1Config, state: dict[str, torch.Tensor]) -> str:
    """sha256 of the recipe, the model config and every tensor of the state dict (name, dtype, shape, bytes)."""
    digest = hashlib.sha256()
    recipe = {"format": FORMAT_VERSION, "opset": OPSET, "torch": torch.__version__, "config": to_mapping(config)}
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    for name, tensor in sorted(state.items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def checkpoint_holds(checkpoint: Path, key: str) -> bool:
    """Whether the checkpoint's files are the weights of ``key``. Why: a model loaded from a checkpoint and then
    changed in memory (fine-tuning, tests) still names that checkpoint; its export must not replace the one of the
    weights on disk."""
    from rt1_ros.model.checkpoint import CheckpointError, load_state, read_checkpoint_config

    try:
        config, _, _ = read_checkpoint_config(checkpoint)
        return weights_key(config, load_state(checkpoint)) == key
    except CheckpointError:
        return False


def cache_root() -> Path:
    if os.environ.get(CACHE_ENVIRONMENT_VARIABLE):
        return Path(os.environ[CACHE_ENVIRONMENT_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rt1_ros" / "onnx"


EXPORT_SUBDIRECTORY = "onnx"  # beside the checkpoint's model.safetensors


def writable(directory: Path) -> bool:
    """Whether a file can be created in ``directory`` (or in the nearest existing parent it would be made in).

    Tried rather than asked (os.access): root passes os.access everywhere but a read-only mount."""
    while not directory.exists():
        directory = directory.parent
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def candidate_directories(key: str, checkpoint: str | Path | None, cache: str | Path | None = None) -> list[Path]:
    """Where an export of ``key`` may be, in the order looked at: beside the checkpoint, then the cache."""
    cached = Path(cache or cache_root()) / key[:32]
    return [Path(checkpoint) / EXPORT_SUBDIRECTORY, cached] if checkpoint is not None else [cached]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_valid_export(directory: Path, key: str) -> OnnxExport | None:
    """The export in ``directory`` if its manifest names ``key`` and both files hash as recorded; else None."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        if manifest.get("key") != key:
            return None
        for name in (ENCODER_FILE, TRANSFORMER_FILE):
            if file_sha256(directory / name) != manifest["files"][name]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return OnnxExport(directory=directory, key=key, created=False)


def exportable_copy(model: RT1) -> RT1:
    """An fp32 eval copy on the CPU with BatchNorm folded into the convolutions and the pooling made exportable;
    the caller's model is left as it is."""
    from rt1_ros.inference.model_preparation import fold_batch_norms

    exportable = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    fold_batch_norms(exportable)
    exportable.image_encoder.pool = FixedGridAveragePool(exportable.config.backbone.token_grid)
    for parameter in exportable.parameters():
        parameter.requires_grad_(False)
    return exportable


def write_onnx_files(model: RT1, directory: Path) -> None:
    """Trace both graphs of ``model`` into ``directory`` (files written whole, then renamed into place)."""
    import warnings

    config = model.config
    exportable = exportable_copy(model)
    frame = torch.rand(1, 3, *config.frame_size)  # the size select_action feeds (the encoder's resize is traced)
    conditioning = torch.randn(1, config.embed_dim)
    window = torch.randn(1, config.num_frames, config.tokens_per_frame, config.embed_dim)
    graphs = ((ENCODER_FILE, FrameEncoderGraph(exportable), (frame, conditioning), ["frame", "conditioning"],
               ["tokens"]),
              (TRANSFORMER_FILE, TransformerGraph(exportable), (window,), ["window"], ["logits"]))
    for name, graph, inputs, input_names, output_names in graphs:
        temporary = directory / f".{name}.{os.getpid()}.tmp"
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter: no onnxscript dependency, and static shapes are what we want. It warns that
            # it is deprecated and that shapes are traced as constants, which is intended here.
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, inputs, str(temporary), dynamo=False, opset_version=OPSET,
                              input_names=input_names, output_names=output_names, do_constant_folding=True)
        temporary.replace(directory / name)


@contextlib.contextmanager
def export_lock(directory: Path) -> Iterator[None]:
    """One exporter per directory at a time (two nodes starting on one checkpoint); the second finds it done."""
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_export(model: RT1, checkpoint: str | Path | None = None, cache: str | Path | None = None,
                key: str | None = None) -> OnnxExport | None:
    """A valid export of ``model`` beside its checkpoint or in the cache, or None; reads only."""
    if checkpoint is None:
        checkpoint = getattr(model, "checkpoint_directory", None)
    key = key or export_key(model)
    for directory in candidate_directories(key, checkpoint, cache):
        found = read_valid_export(directory, key)
        if found is not None:
            return found
    return None


@contextlib.contextmanager
def temporary_export(model: RT1) -> Iterator[OnnxExport]:
    """An export into a temporary folder ($TMPDIR), removed on leaving: for a process that must not leave files
    behind (rt1_node by default: docs/security.md). Load it inside the block; both runtimes read the
    files when they load them."""
    folder = Path(tempfile.mkdtemp(prefix="rt1_onnx_"))
    try:
        write_onnx_files(model, folder)
        yield OnnxExport(directory=folder, key=export_key(model), created=True)
    finally:
        # By absolute path, file by file (shutil.rmtree removes relative to a folder descriptor): what the node
        # removes is then visibly inside $TMPDIR to anyone auditing its file operations.
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def cached_export(model: RT1, checkpoint: str | Path | None = None, cache: str | Path | None = None,
                  force: bool = False) -> OnnxExport:
    """The export of ``model``: a valid one with its key beside the checkpoint or in the cache is reused, else it
    is written beside the checkpoint when that directory is writable and holds these weights, into the cache when
    not (manifest last).

    ``checkpoint`` is the directory ``model`` was loaded from (`from_pretrained` records it on the model as
    ``checkpoint_directory``); without one the export lives in the cache only."""
    if checkpoint is None:
        checkpoint = getattr(model, "checkpoint_directory", None)
    key = export_key(model)
    candidates = candidate_directories(key, checkpoint, cache)
    found = None if force else find_export(model, checkpoint, cache, key)
    if found is not None:
        return found
    beside_usable = checkpoint is not None and writable(candidates[0]) and checkpoint_holds(Path(checkpoint), key)
    directory = candidates[0] if beside_usable else candidates[-1]
    directory.mkdir(parents=True, exist_ok=True)
    with export_lock(directory):
        found = None if force else read_valid_export(directory, key)  # another process may just have written it
        if found is not None:
            return found
        (directory / MANIFEST_FILE).unlink(missing_ok=True)  # no manifest while the files change
        write_onnx_files(model, directory)
        config = model.config
        manifest = {"key": key, "format": FORMAT_VERSION, "opset": OPSET, "torch": torch.__version__,
                    "checkpoint": str(checkpoint) if checkpoint is not None else None,
                    "inputs": {ENCODER_FILE: {"frame": [1, 3, *config.frame_size],
                                              "conditioning": [1, config.embed_dim]},
                               TRANSFORMER_FILE: {"window": [1, config.num_frames, config.tokens_per_frame,
                                                             config.embed_dim]}},
                    "files": {name: file_sha256(directory / name) for name in (ENCODER_FILE, TRANSFORMER_FILE)}}
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as handle:
            json.dump(manifest, handle, indent=2)
        Path(handle.name).replace(directory / MANIFEST_FILE)
    return OnnxExport(directory=directory, key=key, created=True)


def main(argv: list[str] | None = None) -> int:
    from rt1_ros.model.checkpoint import CheckpointError, from_pretrained

    parser = argparse.ArgumentParser(prog="rt1-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint directory (model.safetensors + config.yaml)")
    parser.add_argument("--cache-dir", default=None,
                        help=f"where exports go when the checkpoint directory is read-only (default: "
                             f"${CACHE_ENVIRONMENT_VARIABLE}, else ~/.cache/rt1_ros/onnx)")
    parser.add_argument("--force", action="store_true", help="export again even when the cached export is valid")
    args = parser.parse_args(argv)
    try:
        model, _, _ = from_pretrained(args.checkpoint)
    except CheckpointError as exc:
        print(f"rt1-export: {exc}", file=sys.stderr)
        return 2
    export = cached_export(model, args.checkpoint, args.cache_dir, force=args.force)
    print(f"{'exported' if export.created else 'up to date'} (key {export.key[:16]}):")
    print(f"  {export.encoder}")
    print(f"  {export.transformer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
