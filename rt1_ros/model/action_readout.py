"""The action readout: how the transformer's sequence is laid out from the frame tokens, and where the 11 action
dimensions' logits are read from its outputs. One class per layout, named by ``RT1Config.action_readout``; RT1
holds it as ``action_head`` (so its Linear layers keep the checkpoint names ``action_head.heads.N``).

``last_token`` (the project's sizes; README "The model"):

    frame tokens (B,T,K,D) ─ flatten ─ (B,T·K,D) ─ transformer ─ (B,T·K,W) ─ output at the last token (B,W)
    ─ 11 × Linear W→bins ─ logits (B,11,bins)

``action_positions`` (the released RT-1, google-research/robotics_transformer's transformer_network.py):

    per frame [K image tokens, 11 zero inputs] ─ (B,T·(K+11),D) ─ transformer, mask causal_action_blind
    ─ (B,T·(K+11),W) ─ outputs at -1 + K + t·(K+11) + k: the position before action input k of frame t
    ─ (B,T,11,W) ─ one shared Linear W→bins ─ rows and mode classes into action_layout's order ─ (B,T,11,bins)

  A control step reads the newest frame's 11 (B,11,bins). Training reads every frame's, as the release was
  trained: under the causal mask frame t's logits see frames ≤ t only, so one window of T frames trains T steps,
  each with the context it has at run time when it is among the episode's first T. The action inputs are zeros
  (the release zeroes them), so one forward pass gives all 11 without feeding back the actions.

Each class also says how its windows start an episode (``pads_short_windows``) and what training supervises
(``supervises_every_frame``, ``mode_loss_over_all_bins``), so the rest of the code asks the layout, not its name.
"""
from __future__ import annotations

import torch
from torch import nn

from rt1_ros.configuration.action_layout import MODE_CLASSES, MODE_DIM, NUM_ACTION_DIMS


class ActionReadout(nn.Module):
    """The layout's contract; ``image_tokens`` is K, the image tokens per frame."""

    # Sequence positions per frame besides the K image tokens.
    action_tokens_per_frame = 0
    # True: an episode's first windows are padded to T frames with its first frame; False: they hold the frames so
    # far (the transformer then runs on fewer frames).
    pads_short_windows = True
    # True: training puts a loss on every frame of a window; False: on the newest frame only.
    supervises_every_frame = False
    # True: the mode row is trained as a classifier over all bins (the release trains every position alike);
    # False: over the valid mode classes only (action_layout.MODE_CLASSES).
    mode_loss_over_all_bins = False

    def __init__(self, image_tokens: int) -> None:
        super().__init__()
        self.image_tokens = image_tokens
        self.tokens_per_frame = image_tokens + self.action_tokens_per_frame

    def num_frames(self, outputs: torch.Tensor) -> int:
        return outputs.shape[1] // self.tokens_per_frame

    def sequence(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """frame_tokens (B,T,K,D) -> the transformer's input (B,T·tokens_per_frame,D)."""
        raise NotImplementedError

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        """The transformer's outputs (B,S,W) -> the newest frame's logits (B,11,bins): a control step's."""
        raise NotImplementedError

    def training_readout(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,S,W) -> (what training supervises: logits (B,11,bins), or (B,T,11,bins) with
        ``supervises_every_frame``; the state feature (B,W): the output at the newest frame's last image token, the
        summary of the window that the trainer's scene-state head reads, rt1_ros.training.heads)."""
        raise NotImplementedError

    def last_image_token(self, outputs: torch.Tensor) -> int:
        """The sequence position of the newest frame's last image token."""
        return (self.num_frames(outputs) - 1) * self.tokens_per_frame + self.image_tokens - 1

    def image_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """(B,S,W) -> the outputs at the image tokens only, (B,T·K,W): what causality is checked on."""
        batch, _, width = outputs.shape
        frames = outputs.view(batch, self.num_frames(outputs), self.tokens_per_frame, width)
        return frames[:, :, :self.image_tokens].flatten(1, 2)


class LastTokenReadout(ActionReadout):
    """One Linear per action dimension on the output at the last token."""

    def __init__(self, width: int, num_bins: int, image_tokens: int) -> None:
        super().__init__(image_tokens)
        self.heads = nn.ModuleList(nn.Linear(width, num_bins) for _ in range(NUM_ACTION_DIMS))

    def sequence(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        batch, _, _, dim = frame_tokens.shape
        return frame_tokens.reshape(batch, -1, dim)  # (B,T·K,D)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        return self._logits(outputs[:, -1])

    def training_readout(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        last = outputs[:, -1]  # (B,W), the newest frame's last image token
        # One tensor feeds the heads and the state feature, so their gradients meet there as they always have.
        return self._logits(last), last

    def _logits(self, last: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(last) for head in self.heads], dim=1)  # (B,W) -> (B,11,bins)


class ActionPositionReadout(ActionReadout):
    """The released layout: 11 zero inputs after each frame's image tokens, one shared Linear (the release's
    `_output_tokens`) on the outputs just before them. ``readout_order[i]`` is the released position k of
    action_layout's dimension i; ``mode_class_order[c]`` the released terminate_episode index of MODE_CLASSES[c]
    (config/model.yaml, `official`). Empty: in order."""

    action_tokens_per_frame = NUM_ACTION_DIMS
    pads_short_windows = False
    supervises_every_frame = True
    mode_loss_over_all_bins = True

    def __init__(self, width: int, num_bins: int, image_tokens: int, readout_order: tuple[int, ...] = (),
                 mode_class_order: tuple[int, ...] = ()) -> None:
        super().__init__(image_tokens)
        self.heads = nn.ModuleList([nn.Linear(width, num_bins)])
        order = torch.tensor(readout_order or range(NUM_ACTION_DIMS))
        # Offsets of action_layout's dimensions from a frame's first read position, K - 1 + t·(K+11).
        self.register_buffer("readout_offsets", order, persistent=False)
        classes = list(mode_class_order or range(len(MODE_CLASSES)))
        # The mode row's bins reordered so that its first ones are MODE_CLASSES' (a permutation of all bins).
        self.register_buffer("mode_bins", torch.tensor(classes + list(range(len(classes), num_bins))),
                             persistent=False)

    def sequence(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        batch, frames, _, dim = frame_tokens.shape
        zeros = frame_tokens.new_zeros(batch, frames, self.action_tokens_per_frame, dim)
        return torch.cat([frame_tokens, zeros], dim=2).reshape(batch, -1, dim)  # (B,T·(K+11),D)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        first = self.last_image_token(outputs)
        logits = self.heads[0](outputs[:, first + self.readout_offsets])  # (B,11,bins), action_layout's rows
        return self._mode_classes_first(logits)

    def training_readout(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = torch.arange(self.num_frames(outputs), device=outputs.device)
        first = frames * self.tokens_per_frame + self.image_tokens - 1  # (T,) each frame's last image token
        logits = self.heads[0](outputs[:, first[:, None] + self.readout_offsets])  # (B,T,11,bins)
        return self._mode_classes_first(logits), outputs[:, self.last_image_token(outputs)]

    def _mode_classes_first(self, logits: torch.Tensor) -> torch.Tensor:
        """(...,11,bins) -> the same with the mode row's bins in MODE_CLASSES' order."""
        mode = logits[..., MODE_DIM:, :].index_select(-1, self.mode_bins)  # (...,1,bins)
        return torch.cat([logits[..., :MODE_DIM, :], mode], dim=-2)


READOUTS: dict[str, type[ActionReadout]] = {"last_token": LastTokenReadout, "action_positions": ActionPositionReadout}


def build_readout(layout: str, width: int, num_bins: int, image_tokens: int, readout_order: tuple[int, ...] = (),
                  mode_class_order: tuple[int, ...] = ()) -> ActionReadout:
    """The readout of ``layout`` (a READOUTS key) over a transformer of ``width``."""
    if layout == "action_positions":
        return ActionPositionReadout(width, num_bins, image_tokens, readout_order, mode_class_order)
    if layout == "last_token":
        return LastTokenReadout(width, num_bins, image_tokens)
    raise ValueError(f"action_readout must be one of {tuple(READOUTS)}, got {layout!r}")
