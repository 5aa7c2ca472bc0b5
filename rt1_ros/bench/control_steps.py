"""The two ways a control step is timed (cached `RT1Policy.select_action`, full 6-frame recompute) and the token
check of an optimised path against the eager reference; shared by the latency, lucidrains and cuda sections."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.fixtures import INSTRUCTION, instruction_embedding
from rt1_ros.bench.measurement import Timings, time_calls
from rt1_ros.model.rt1 import RT1, images_to_tensor
from rt1_ros.policy import RT1Policy, RT1PolicyConfig
from rt1_ros.inference.frame_history import window_indices
from rt1_ros.inference.image_decoding import resize_for_model
from rt1_ros.inference.options import InferenceOptions
from rt1_ros.inference.parity import input_dependence, reference_and_candidate_tokens, tokens_agree
from rt1_ros.inference.paths import build_path


def make_policy(model: RT1, options: InferenceOptions | None, device: torch.device) -> RT1Policy:
    embedding = instruction_embedding()
    config = RT1PolicyConfig(model=model.config, action_space=ActionSpaceConfig.from_yaml())
    policy = RT1Policy(config, lambda text: embedding, model=model)
    policy.prepare_inference(device, options)
    policy.set_instruction(INSTRUCTION)
    return policy


def cached_steps(policy: RT1Policy, frames: np.ndarray, config: BenchConfig, steps: int | None = None,
                 warmup: int | None = None) -> tuple[Timings, list[np.ndarray]]:
    """RT1Policy.select_action on consecutive frames from an empty history -> timings and every step's tokens."""
    policy.reset()
    tokens: list[np.ndarray] = []

    def step(i: int) -> None:
        tokens.append(policy.select_action(frames[i % len(frames)]).tokens)

    timings = time_calls(step, config.warmup_steps if warmup is None else warmup,
                         config.steps if steps is None else steps, config.max_seconds_per_measurement)
    return timings, tokens


def full_recompute_steps(policy: RT1Policy, frames: np.ndarray,
                         config: BenchConfig) -> tuple[Timings, list[np.ndarray]]:
    """What a step costs without the cache: the same preprocessing, then RT1.forward over the 6-frame window (the
    newest frame plus the five before it, made as the policy makes it), on the policy's (possibly optimised)
    model."""
    model = policy.inference_path.model
    size, num_frames = policy.frame_size, model.config.num_frames
    embedding = instruction_embedding().reshape(1, -1).to(policy.device, policy.dtype)
    memory_format = (torch.channels_last if policy.inference_path.options.channels_last
                     else torch.contiguous_format)
    preprocessed: list[torch.Tensor] = []
    tokens: list[np.ndarray] = []

    @torch.inference_mode()
    def step(i: int) -> None:
        frame = images_to_tensor(resize_for_model(frames[i % len(frames)], size))
        preprocessed.append(frame.to(policy.device, policy.dtype))
        indices = window_indices(len(preprocessed) - 1, num_frames, model.config.pads_short_windows)
        window = torch.stack([preprocessed[j] for j in indices])
        # The frames laid out as the prepared encoder expects (channels_last on the optimised path, as
        # TorchPath.encode_frame does for the cached step); RT1.encode_frames flattens the batch of one into the
        # frames as a view, so the layout reaches the encoder.
        images = window.contiguous(memory_format=memory_format).unsqueeze(0)  # (1,T,3,S,S)
        logits = model.logits_from_frame_tokens(model.encode_frames(images, embedding))
        tokens.append(policy.tokenizer.tokens_from_logits(logits.float())[0].cpu().numpy())

    timings = time_calls(step, config.warmup_steps, config.steps, config.max_seconds_per_measurement)
    return timings, tokens


@dataclass(frozen=True)
class TokenCheck:
    """Tokens of an optimised path vs the eager fp32 reference's on the same fixed frames."""

    options: str
    frames: int
    token_agreement: float
    identical: bool
    max_abs_logit_difference: float
    input_dependence: float  # the reference's largest logit change between frames (`input_dependence`)

    @property
    def vacuous(self) -> bool:
        """The reference barely reacts to its input: agreement then says nothing about the optimised path."""
        return self.input_dependence <= max(1e-3, 100.0 * self.max_abs_logit_difference)

    def as_dict(self) -> dict[str, Any]:
        return {"options": self.options, "frames": self.frames, "token_agreement": self.token_agreement,
                "identical": self.identical, "max_abs_logit_difference": self.max_abs_logit_difference,
                "input_dependence": self.input_dependence, "vacuous": self.vacuous}


def check_optimised_tokens(model: RT1, frames: np.ndarray, device: torch.device,
                           options: InferenceOptions | None = None) -> TokenCheck:
    """Tokens of the optimised path vs the eager fp32 reference on the same fixed frames (cached steps)."""
    options = options or InferenceOptions()
    path = build_path(model, options, device)
    images = images_to_tensor(np.stack([resize_for_model(f, model.config.frame_size) for f in frames]))
    conditioning = model.embed_instruction(instruction_embedding()[None]).detach()
    reference_tokens, candidate_tokens, worst = reference_and_candidate_tokens(model, path, images, conditioning)
    return TokenCheck(options=options.describe(device), frames=len(frames),
                      token_agreement=tokens_agree(reference_tokens, candidate_tokens),
                      identical=bool(torch.equal(reference_tokens, candidate_tokens)),
                      max_abs_logit_difference=worst,
                      input_dependence=input_dependence(model, images, conditioning))
