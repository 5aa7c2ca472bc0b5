"""Checkpoints: ``model.safetensors`` (tensors only, no pickle) + ``config.yaml`` (model config and action space).

A checkpoint is a directory. `from_pretrained` refuses, with a message naming the file and the problem, a missing
directory or file, a truncated/corrupt tensor file, and a checkpoint of another architecture (missing, unexpected or
differently shaped tensors).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import torch
import yaml

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.model.rt1 import RT1, RT1Config
from rt1_ros.configuration.yaml_config import ConfigError, from_mapping, safe_load, short_repr, to_mapping

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
MAX_CONFIG_BYTES = 1 << 20  # a real one is a few kB; a bigger one is not worth parsing


class CheckpointError(RuntimeError):
    pass


def save_pretrained(model: RT1, directory: str | Path, action_space: ActionSpaceConfig,
                    extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Write to a temporary name and rename, so a crash never leaves a half-written checkpoint behind.
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "rt1_ros"})
    tmp.replace(directory / WEIGHTS_FILE)
    document = {"model": to_mapping(model.config), "action_space": to_mapping(action_space)}
    if extra:
        document["extra"] = extra
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return directory


def append_report_run(directory: str | Path, record: dict) -> Path:
    """Add ``record`` to config.yaml's ``extra.report_runs`` (rt1-eval --split report), keeping everything else; the
    weights are untouched. Written to a temporary name and renamed, like the weights."""
    read_checkpoint_config(directory)  # a checkpoint config that loads, or CheckpointError
    path = Path(directory) / CONFIG_FILE
    document = safe_load(path.read_text(encoding="utf-8"))
    extra = document.setdefault("extra", {}) or {}
    document["extra"] = extra
    extra["report_runs"] = [*(extra.get("report_runs") or []), record]
    tmp = path.with_name(CONFIG_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path


def _require_regular_file(path: Path, what: str) -> None:
    """CheckpointError naming ``path`` unless it is a regular file: missing, or a device, FIFO or directory (a
    symlink to /dev/zero would be read forever), told apart so the message says which."""
    if not path.exists():
        target = f" (a symlink to {os.readlink(path)}, which does not exist)" if path.is_symlink() else ""
        raise CheckpointError(f"checkpoint {what} not found: {path}{target}")
    if not path.is_file():
        mode = path.stat().st_mode
        kind = ("a directory" if stat.S_ISDIR(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        target = f", through the symlink to {path.resolve()}" if path.is_symlink() else ""
        raise CheckpointError(f"checkpoint {what} {path} is {kind}{target}, not a regular file")


def read_checkpoint_config(directory: str | Path) -> tuple[RT1Config, ActionSpaceConfig, dict]:
    if not Path(directory).is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    path = Path(directory) / CONFIG_FILE
    _require_regular_file(path, "config")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{size} bytes, more than a checkpoint config needs ({MAX_CONFIG_BYTES})")
        document = safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ConfigError(f"expected a mapping at top level, found {type(document).__name__}")
        for section in ("model", "action_space"):
            if not isinstance(document.get(section), dict):
                raise ConfigError(f"section '{section}' must be a mapping, found {short_repr(document.get(section))}")
        model_config = from_mapping(RT1Config, document["model"], where=str(path))
        action_space = from_mapping(ActionSpaceConfig, document["action_space"], where=str(path))
    except (yaml.YAMLError, TypeError, ConfigError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint config {path} is invalid: {exc}") from exc
    return model_config, action_space, document.get("extra") or {}


def load_state(directory: str | Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_FILE
    _require_regular_file(path, "weights")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint weights {path} are corrupt or truncated: {exc}") from exc


def load_weights_into(model: RT1, directory: str | Path) -> None:
    """Strictly load a checkpoint's tensors into an existing model of the same architecture."""
    state = load_state(directory)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} tensor(s) e.g. {missing[:3]}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)} tensor(s) e.g. {unexpected[:3]}")
        if shapes:
            problems.append(f"{len(shapes)} shape mismatch(es) e.g. {shapes[:3]}")
        raise CheckpointError(f"checkpoint {Path(directory) / WEIGHTS_FILE} does not match the model architecture: "
                              + "; ".join(problems))
    model.load_state_dict(state)


def from_pretrained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[RT1, ActionSpaceConfig, dict]:
    directory = Path(directory)
    model_config, action_space, extra = read_checkpoint_config(directory)
    model = RT1(model_config)
    load_weights_into(model, directory)
    # Where the weights came from, so derived files (the ONNX exports of rt1_ros.inference.onnx_export) can be
    # cached beside them; those are keyed by the weights' hash, so a model changed after loading is not confused
    # with its checkpoint.
    model.checkpoint_directory = directory.resolve()
    return model.to(device).eval(), action_space, extra
