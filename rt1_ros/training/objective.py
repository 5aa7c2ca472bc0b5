"""What rt1-train minimises: the policy's action loss plus, with their weights, the losses of the training-only heads
(rt1_ros.training.heads), which read what the policy's forward returns.

    total = action loss + auxiliary_state_weight × scene-state loss + target_cell_weight × target-cell loss

The objective owns the heads, so the policy the node loads never holds them; it is the module the optimizer steps
through (DistributedDataParallel wraps it across processes, heads included). Each head is checkpointed in its own
file beside the policy's (HEAD_FILES), so a resumed or fine-tuned run continues with it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rt1_ros.policy import LossConfig, RT1Policy
from rt1_ros.policy.modeling import TrainingBatch
from rt1_ros.training.heads import SceneStateHead, TargetCellHead

AUXILIARY_HEAD_FILE = "auxiliary_head.safetensors"  # training only: not part of the policy the node loads
TARGET_CELL_HEAD_FILE = "target_cell_head.safetensors"  # training only, likewise
# The training-only heads: the attribute (also their parameters' name prefix) -> the file each is checkpointed in.
HEAD_FILES = {"auxiliary_head": AUXILIARY_HEAD_FILE, "target_cell_head": TARGET_CELL_HEAD_FILE}
# The heads' outputs of `TrainingObjective.forward`, by the name their metrics.csv columns take after train_/val_.
HEAD_METRICS = {"auxiliary_loss": "auxiliary_loss", "target_cell_loss": "target_cell_loss",
                "target_cell_acc": "target_cell_accuracy"}


class TrainingObjective(nn.Module):
    def __init__(self, policy: RT1Policy, auxiliary_head: SceneStateHead | None = None,
                 target_cell_head: TargetCellHead | None = None, auxiliary_state_weight: float = 0.0,
                 target_cell_weight: float = 0.0) -> None:
        super().__init__()
        self.policy = policy
        self.auxiliary_head = auxiliary_head
        self.target_cell_head = target_cell_head
        self.auxiliary_state_weight = auxiliary_state_weight
        self.target_cell_weight = target_cell_weight

    def heads(self) -> dict[str, nn.Module]:
        """The training-only heads in use, by attribute name (HEAD_FILES' keys)."""
        heads = {name: getattr(self, name) for name in HEAD_FILES}
        return {name: head for name, head in heads.items() if head is not None}

    def trainable_named_parameters(self):
        """The network's parameters under their checkpoint names, then each head's under its attribute name: the
        order (and names) the optimizer and its saved state use."""
        yield from self.policy.model.named_parameters()
        for name, head in self.heads().items():
            yield from ((f"{name}.{n}", p) for n, p in head.named_parameters())

    def forward(self, batch: TrainingBatch, loss: LossConfig | None = None) -> tuple[torch.Tensor, dict]:
        """-> total loss and the policy's outputs plus auxiliary_loss, target_cell_loss and target_cell_accuracy
        (each None without its head or without ``scene_state`` in the batch; the accuracy also None when no target
        was in view). ``loss`` shapes the action loss (None: the policy's config)."""
        total, outputs = self.policy(batch, loss)
        auxiliary_loss = target_cell_loss = target_cell_accuracy = None
        scene_state = batch.get("scene_state")  # (N,S)
        if self.auxiliary_head is not None and scene_state is not None:
            auxiliary_loss = self.auxiliary_head.loss(self.auxiliary_head(outputs["features"]), scene_state)
            total = total + self.auxiliary_state_weight * auxiliary_loss
        if self.target_cell_head is not None and scene_state is not None:
            current = outputs["spatial_tokens"][batch["windows"][:, -1]]  # (N,g²,D): each window's newest frame
            target_cell_loss, target_cell_accuracy = self.target_cell_head.loss(self.target_cell_head(current),
                                                                                scene_state)
            total = total + self.target_cell_weight * target_cell_loss
        return total, {**outputs, "auxiliary_loss": auxiliary_loss, "target_cell_loss": target_cell_loss,
                       "target_cell_accuracy": target_cell_accuracy}

    def save_heads(self, directory: Path) -> None:
        """Each head's tensors to its HEAD_FILES file in ``directory`` (safetensors)."""
        from safetensors.torch import save_file

        for name, head in self.heads().items():
            save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
                      str(directory / HEAD_FILES[name]))

    def load_heads(self, directory: Path) -> list[str]:
        """Each head's tensors from its file in ``directory``, strictly; -> the heads with no file there (left as
        they are)."""
        from safetensors.torch import load_file

        missing = []
        for name, head in self.heads().items():
            file = directory / HEAD_FILES[name]
            if file.is_file():
                head.load_state_dict(load_file(str(file)))
            else:
                missing.append(name)
        return missing
