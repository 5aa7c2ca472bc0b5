"""The last T frames' tokens, so a control step encodes only the newest frame.

Until T frames exist the window is padded by repeating the oldest frame; training windows at the start of an
episode are padded the same way (`pad_window_indices`), so the policy sees at run time what it saw in training.
The released RT-1 (``pad_short_windows`` False) does not pad: its first steps read a window of the frames so far.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rt1_ros.model.rt1 import RT1Config


class FrameTokenHistory:
    def __init__(self, num_frames: int, pad_short_windows: bool = True) -> None:
        self.num_frames = num_frames
        self.pad_short_windows = pad_short_windows
        self._tokens: deque[torch.Tensor] = deque(maxlen=num_frames)

    @classmethod
    def for_model(cls, config: "RT1Config") -> "FrameTokenHistory":
        """The history ``config``'s network reads: its window length, padded as it was trained."""
        return cls(config.num_frames, config.pads_short_windows)

    def push(self, frame_tokens: torch.Tensor) -> None:
        """frame_tokens (K,D) of the newest frame."""
        self._tokens.append(frame_tokens)

    def clear(self) -> None:
        self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)

    def window(self) -> torch.Tensor:
        """(1,T,K,D), oldest first, padded at the front with the oldest frame; (1,T',K,D) with the T' ≤ T frames so
        far when short windows are not padded."""
        if not self._tokens:
            raise RuntimeError("no frame has been encoded yet")
        padding = [self._tokens[0]] * (self.num_frames - len(self._tokens)) if self.pad_short_windows else []
        return torch.stack(padding + list(self._tokens)).unsqueeze(0)


def pad_window_indices(last_index: int, num_frames: int) -> list[int]:
    """Frame indices of the window ending at ``last_index``, front-padded by repeating frame 0."""
    return [max(0, last_index - num_frames + 1 + i) for i in range(num_frames)]


def window_indices(last_index: int, num_frames: int, pad_short_windows: bool = True) -> list[int]:
    """Frame indices of the window ending at ``last_index`` as `FrameTokenHistory` makes it: front-padded, or the
    frames so far when short windows are not padded."""
    if pad_short_windows:
        return pad_window_indices(last_index, num_frames)
    return list(range(max(0, last_index + 1 - num_frames), last_index + 1))
