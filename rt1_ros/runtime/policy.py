"""One RT-1 control step with a per-frame token cache.

`Policy.step(rgb)` encodes only the newest frame through the FiLM-EfficientNet and TokenLearner, appends its
tokens to the history and reruns the (small) transformer over the cached window. The instruction is embedded once
per instruction; a new instruction clears the history, since cached tokens were conditioned on the old one.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch

from rt1_ros.model.action_tokenizer import ActionTokenizer
from rt1_ros.model.rt1 import RT1
from rt1_ros.runtime.frame_history import FrameTokenHistory
from rt1_ros.runtime.inference_optimisation import REFERENCE, EagerPath, InferenceOptions, build_path
from rt1_ros.runtime.image_decoding import resize_for_model

DEVICES = ("auto", "cuda", "cpu")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got '{name}'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


def images_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(...,H,W,3) uint8 -> (...,3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).movedim(-1, -3).float().div_(255.0)


@dataclass(frozen=True)
class PolicyStep:
    tokens: np.ndarray  # (11,) int
    action: np.ndarray  # (11,) float, decoded (mode as class index)
    inference_ms: float


@runtime_checkable
class ControlPolicy(Protocol):
    """What `rt1_ros.runtime.controller.Controller` needs from a policy: `Policy` is the real one; tests drive the
    controller with scripted ones. ``instruction`` is None while no instruction is set."""

    instruction: str | None

    def set_instruction(self, instruction: str) -> None:
        """Start an episode on this (validated) instruction; the frame history restarts."""

    def clear_instruction(self) -> None:
        """Drop the instruction; `step` is not called again until a new one is set."""

    def reset(self) -> None:
        """Restart the frame history (stale camera, failed step), keeping the instruction."""

    def step(self, rgb: np.ndarray) -> PolicyStep:
        """rgb (H,W,3) uint8 of the newest frame -> tokens and decoded action; may raise (the controller holds)."""


class Policy:
    def __init__(self, model: RT1, tokenizer: ActionTokenizer, embed_text: Callable[[str], torch.Tensor],
                 device: torch.device, half_precision: bool = False,
                 inference: InferenceOptions | None = None) -> None:
        """``inference`` None runs ``model`` itself, eagerly; options build a fast path on a prepared copy
        (`rt1_ros.runtime.inference_optimisation`). ``half_precision`` is fp16 on CUDA either way."""
        if model.config.num_bins != tokenizer.num_bins:
            raise ValueError(f"model has {model.config.num_bins} bins, action space {tokenizer.num_bins}")
        self.device = device
        if inference is None:
            self.dtype = torch.float16 if half_precision and device.type == "cuda" else torch.float32
            self.model = model.to(device=device, dtype=self.dtype).eval()
            self.inference_path = EagerPath(self.model, REFERENCE)
            self.inference_options = None
        else:
            if half_precision:
                inference = dataclasses.replace(inference, cuda_dtype="float16")
            self.inference_options = inference  # as applied, for descriptions
            self.dtype = inference.dtype_on(device)
            self.inference_path = build_path(model, inference, device)
            self.model = self.inference_path.model
        self.tokenizer = tokenizer
        self.embed_text = embed_text
        self.history = FrameTokenHistory(model.config.num_frames)
        self.instruction: str | None = None
        self._conditioning: torch.Tensor | None = None  # (1,D)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def set_instruction(self, instruction: str) -> None:
        embedding = self.embed_text(instruction).reshape(1, -1).to(self.device, self.dtype)
        with torch.inference_mode():
            self._conditioning = self.model.embed_instruction(embedding)
        self.instruction = instruction
        self.history.clear()

    def clear_instruction(self) -> None:
        self.instruction = None
        self._conditioning = None
        self.history.clear()

    def reset(self) -> None:
        self.history.clear()

    @torch.inference_mode()
    def step(self, rgb: np.ndarray) -> PolicyStep:
        """rgb (H,W,3) uint8 of the newest frame -> tokens and decoded action."""
        if self._conditioning is None:
            raise RuntimeError("no instruction set")
        started = time.perf_counter()
        frame = images_to_tensor(resize_for_model(rgb, self.image_size)).unsqueeze(0)  # (1,3,S,S)
        frame = frame.to(self.device, self.dtype, non_blocking=True)
        self.history.push(self.inference_path.encode_frame(frame, self._conditioning)[0])  # (K,D)
        logits = self.inference_path.logits(self.history.window())  # (1,11,bins)
        if not torch.isfinite(logits).all():
            # argmax over NaN logits still yields valid-looking tokens: refuse them here, the caller holds the robot.
            raise FloatingPointError("the model produced non-finite logits")
        tokens = self.tokenizer.tokens_from_logits(logits.float())[0].cpu().numpy()  # sync point on CUDA
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return PolicyStep(tokens=tokens, action=self.tokenizer.decode(tokens), inference_ms=elapsed_ms)
