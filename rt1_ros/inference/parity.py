"""Parity checks of an inference path against the eager fp32 reference: the tokens each gives over the same frames
as cached control steps, and how much the reference's output depends on its input (without which agreement proves
nothing)."""
from __future__ import annotations

import torch

from rt1_ros.configuration.action_layout import MODE_CLASSES
from rt1_ros.inference.frame_history import FrameTokenHistory
from rt1_ros.inference.paths import InferencePath, window_logits
from rt1_ros.model.action_tokenizer import tokens_from_logits
from rt1_ros.model.rt1 import RT1


@torch.inference_mode()
def reference_and_candidate_tokens(reference: RT1, path: InferencePath, frames: torch.Tensor,
                                   conditioning: torch.Tensor, num_modes: int = len(MODE_CLASSES),
                                   ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Run the fp32 eager ``reference`` and ``path`` over the same frames as cached control steps.

    frames (N,3,h,w) in [0,1] at the config's frame_size, conditioning (1,D). Returns tokens (N,11) of each, decoded
    as the policy decodes them (`tokens_from_logits`: the mode over its ``num_modes`` valid classes), and the largest
    absolute logit difference. Windows are made as the policy makes them (`FrameTokenHistory`). The reference is on
    the CPU or the path's device, whichever it is already on.
    """
    reference = reference.eval()
    device = next(path.model.parameters()).device
    dtype = next(path.model.parameters()).dtype
    reference_device = next(reference.parameters()).device
    history_reference = FrameTokenHistory.for_model(reference.config)
    history_candidate = FrameTokenHistory.for_model(reference.config)
    tokens_reference, tokens_candidate, worst = [], [], 0.0
    for frame in frames:
        frame = frame.unsqueeze(0)
        history_reference.push(reference.encode_frame(frame.to(reference_device),
                                                      conditioning.to(reference_device))[0])
        history_candidate.push(path.encode_frame(frame.to(device, dtype), conditioning.to(device, dtype))[0])
        logits_reference = reference.logits_from_frame_tokens(history_reference.window()).float().cpu()
        logits_candidate = window_logits(path, history_candidate.window()).float().cpu()
        worst = max(worst, (logits_reference - logits_candidate).abs().max().item())
        tokens_reference.append(tokens_from_logits(logits_reference, num_modes)[0])
        tokens_candidate.append(tokens_from_logits(logits_candidate, num_modes)[0])
    return torch.stack(tokens_reference), torch.stack(tokens_candidate), worst


@torch.inference_mode()
def input_dependence(reference: RT1, frames: torch.Tensor, conditioning: torch.Tensor) -> float:
    """How much ``reference``'s logits change with the frame: the largest absolute logit difference between any
    frame's first control step (its window as at an episode's start) and the first frame's.

    Why: a check that two paths give the same tokens proves nothing when the model's output ignores its input (an
    untrained paper-size encoder's activations vanish, so every frame gives the same logits). Report this beside
    every agreement figure and call the check vacuous when it is not well above the paths' own logit difference."""
    reference = reference.eval()
    device = next(reference.parameters()).device
    first = None
    spread = 0.0
    for frame in frames:
        history = FrameTokenHistory.for_model(reference.config)
        history.push(reference.encode_frame(frame.unsqueeze(0).to(device), conditioning.to(device))[0])
        logits = reference.logits_from_frame_tokens(history.window()).float().cpu()
        if first is None:
            first = logits
        spread = max(spread, (logits - first).abs().max().item())
    return spread


def tokens_agree(reference_tokens: torch.Tensor, candidate_tokens: torch.Tensor) -> float:
    """Fraction of action dimensions (over all steps) where the candidate picks the reference's bin."""
    return (reference_tokens == candidate_tokens).float().mean().item()
