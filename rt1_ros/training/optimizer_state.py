"""Optimizer state on disk without pickle: its tensors (AdamW's moments) go to optimizer.safetensors, the rest of
its state (param groups, step counts and other scalars) to optimizer.json. Resuming restores both."""
from __future__ import annotations

import json
from pathlib import Path

import torch

OPTIMIZER_FILE = "optimizer.safetensors"
OPTIMIZER_JSON_FILE = "optimizer.json"


def save_optimizer_state(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Optimizer tensors -> optimizer.safetensors ('state.<param>.<name>'), everything else -> JSON."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, entries in state["state"].items():
        for name, value in entries.items():
            key = f"state.{param_id}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    tmp = directory / (OPTIMIZER_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(directory / OPTIMIZER_FILE)
    (directory / OPTIMIZER_JSON_FILE).write_text(json.dumps({"param_groups": state["param_groups"],
                                                             "scalars": scalars}), encoding="utf-8")


def load_optimizer_state(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(directory / OPTIMIZER_FILE))
    document = json.loads((directory / OPTIMIZER_JSON_FILE).read_text(encoding="utf-8"))
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(document["scalars"].items()):
        _, param_id, name = key.split(".", 2)
        state.setdefault(int(param_id), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": document["param_groups"]})
