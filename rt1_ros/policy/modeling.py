"""RT1Policy: RT-1 as one policy object, in the shape LeRobot's ``PreTrainedPolicy`` made familiar.

    RT1Policy.from_pretrained(dir) / save_pretrained(dir)    checkpoint directory (rt1_ros.model.checkpoint)
    forward(batch) -> loss, outputs                          training and validation (rt1-train)
    set_instruction(text); select_action(rgb) -> PolicyStep  one control step (rt1_node's controller, rt1-eval --direct,
    reset()                                                  rt1-bench); reset restarts the frame history

Training and control share the network (``self.model``) and the tokenizer; they differ in how frames reach it.
``forward`` encodes every distinct frame of a batch once and runs the transformer per window. ``select_action``
encodes only the newest frame and reruns the transformer over the cached tokens of the last 6 (a frame's tokens
depend only on that frame and the instruction); it runs on an inference path built from ``self.model`` by
`prepare_inference` (rt1_ros.inference.paths: a batch-norm-folded, channels-last copy by default).
Switching to train mode drops that path, so weights updated by training are never stepped with a stale copy.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from rt1_ros.model.action_tokenizer import ActionTokenizer, tokens_from_logits
from rt1_ros.model.checkpoint import from_pretrained as read_pretrained
from rt1_ros.model.checkpoint import save_pretrained as write_pretrained
from rt1_ros.model.rt1 import RT1, images_to_tensor
from rt1_ros.policy.configuration import RT1PolicyConfig
from rt1_ros.policy.loss import LossConfig, action_loss
from rt1_ros.policy.control_policy import PolicyStep
from rt1_ros.inference.frame_history import FrameTokenHistory
from rt1_ros.inference.image_decoding import resize_for_model
from rt1_ros.inference.options import REFERENCE, InferenceOptions
from rt1_ros.inference.paths import build_path, window_logits, TorchPath

DEVICES = ("auto", "cuda", "cpu")

# forward's batch: a dict of tensors, as LeRobot policies take them.
#   images (F,3,h,w) float in [0,1]: every distinct frame of the batch once
#   frame_text (F,E): each frame's instruction embedding
#   windows (N,T): per training window, the rows of `images` in it, oldest first
#   targets (N,11): the demonstrated action tokens of each window's newest step; (N,T,11) of each of its steps
#       when the layout supervises every frame (the released RT-1)
#   scored (N,T) bool, optional, with every-frame targets: which frames count (validation scores each step once)
#   scene_state (N,S), optional: privileged simulator state for the trainer's training-only heads (NaN rows =
#       unknown); the policy itself does not read it
TrainingBatch = dict[str, torch.Tensor]


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got '{name}'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


class RT1Policy(nn.Module):
    def __init__(self, config: RT1PolicyConfig, embed_text: Callable[[str], torch.Tensor] | None = None,
                 model: RT1 | None = None) -> None:
        """``embed_text`` maps an instruction to its (E,) sentence embedding (select_action needs it; training
        passes embeddings in the batch). ``model`` wraps existing weights instead of a fresh initialisation."""
        super().__init__()
        if model is not None and model.config != config.model:
            raise ValueError("model's config differs from the policy config's")
        if config.model.num_bins != config.action_space.num_bins:
            raise ValueError(f"model has {config.model.num_bins} bins, action space {config.action_space.num_bins}")
        self.config = config
        self.model = model if model is not None else RT1(config.model)
        self.tokenizer = ActionTokenizer(config.action_space)
        self.num_modes = len(config.action_space.mode_classes)
        self.embed_text = embed_text
        self.checkpoint_extra: dict = {}  # what the checkpoint recorded beside the weights (step, metrics, data)
        self.history = FrameTokenHistory.for_model(config.model)
        self.instruction: str | None = None
        self._conditioning: torch.Tensor | None = None  # (1,D)
        self._inference_request: tuple[torch.device, InferenceOptions | None, bool] | None = None
        self._inference_path: TorchPath | None = None
        self._dtype = torch.float32

    # ---------------------------------------------------------------------------------------------- checkpoints
    @classmethod
    def from_pretrained(cls, directory: str | Path, embed_text: Callable[[str], torch.Tensor] | None = None,
                        device: str | torch.device = "cpu", inference: InferenceOptions | None = None,
                        half_precision: bool = False) -> "RT1Policy":
        """A checkpoint directory (model.safetensors + config.yaml; never pickle) -> a policy in eval mode, its
        inference path prepared on ``device``. Raises CheckpointError naming the file at fault."""
        model, action_space, extra = read_pretrained(directory)
        policy = cls(RT1PolicyConfig(model=model.config, action_space=action_space), embed_text, model=model)
        policy.checkpoint_extra = extra
        policy.prepare_inference(device, inference, half_precision)
        return policy

    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        """The network and its action space only: the training-only heads and the optimizer are the trainer's."""
        return write_pretrained(self.model, directory, self.config.action_space, extra=extra)

    # ------------------------------------------------------------------------------------------------ training
    def forward(self, batch: TrainingBatch, loss: LossConfig | None = None) -> tuple[torch.Tensor, dict]:
        """-> the action loss and outputs. ``loss`` None uses ``config.loss``.

        Rows are what the loss is taken over: one per window (its newest frame) in the last-token layout; in the
        released layout every frame of every window, or those ``scored`` marks. Outputs:
            logits (M,11,bins), tokens (M,11), targets (M,11), rows (M,) the window of each row
            action_loss (the loss), per_dim (11,)
            features (N,W): the state feature of each window (ActionReadout.training_readout)
            spatial_tokens (F,g²,D): each frame's FiLM-conditioned feature grid
        The last two are what the trainer's training-only heads read (rt1_ros.training.objective)."""
        loss = self.config.loss if loss is None else loss
        readout = self.model.action_head
        conditioning = self.model.embed_instruction(batch["frame_text"])  # (F,D)
        spatial_tokens = self.model.image_encoder(batch["images"], conditioning)  # (F,g²,D): each frame once
        tokens = self.model.token_learner(spatial_tokens)  # (F,K,D)
        outputs = self.model.transformer_outputs(tokens[batch["windows"]])  # (N,T,K,D) -> (N,S,W)
        logits, features = readout.training_readout(outputs)  # (N,11,bins) or every frame's (N,T,11,bins); (N,W)
        targets = batch["targets"]  # (N,11), or (N,T,11)
        windows = torch.arange(len(targets), device=targets.device)  # (N,)
        if readout.supervises_every_frame:
            scored = batch.get("scored")  # (N,T) bool; absent: every frame
            if scored is None:
                scored = torch.ones(targets.shape[:2], dtype=torch.bool, device=targets.device)
            logits, targets = logits[scored], targets[scored]  # (M,11,bins), (M,11)
            windows = windows[:, None].expand(scored.shape)[scored]  # (M,)
        mode_classes = self.config.model.num_bins if readout.mode_loss_over_all_bins else self.num_modes
        mean_loss, per_dim = action_loss(logits, targets, mode_classes, loss.label_smoothing,
                                         loss.target_sigma_bins)
        with torch.no_grad():
            predicted = tokens_from_logits(logits.detach(), self.num_modes)
        return mean_loss, {"logits": logits, "tokens": predicted, "targets": targets, "rows": windows,
                           "action_loss": mean_loss, "per_dim": per_dim, "features": features,
                           "spatial_tokens": spatial_tokens}

    def train(self, mode: bool = True) -> "RT1Policy":
        super().train(mode)
        if mode:
            self._inference_path = None  # rebuilt from the updated weights on the next select_action
            self._conditioning = None
            self.history.clear()
        return self

    # ------------------------------------------------------------------------------------------------- control
    def prepare_inference(self, device: str | torch.device = "cpu", options: InferenceOptions | None = None,
                          half_precision: bool = False) -> None:
        """Build the path select_action runs: ``options`` None runs ``self.model`` itself, eagerly (the reference);
        options build a prepared copy (rt1_ros.inference.paths). ``half_precision`` is fp16 on
        CUDA either way. Keeps the instruction (re-embedded for the new path) and restarts the history."""
        device = resolve_device(device) if isinstance(device, str) else device
        self._inference_request = (device, options, half_precision)
        self.eval()
        if options is None:
            self._dtype = torch.float16 if half_precision and device.type == "cuda" else torch.float32
            self.model.to(device=device, dtype=self._dtype)
            self._inference_path = TorchPath(self.model, REFERENCE)
        else:
            if half_precision:
                options = dataclasses.replace(options, cuda_dtype="float16")
            self._dtype = options.dtype_on(device)
            self._inference_path = build_path(self.model, options, device)
        self.history.clear()
        if self.instruction is not None:
            self._conditioning = self._embed(self.instruction)

    @property
    def inference_path(self) -> TorchPath:
        if self._inference_path is None:
            device, options, half = self._inference_request or (self._parameter_device(), None, False)
            self.prepare_inference(device, options, half)
        return self._inference_path

    @property
    def inference_options(self) -> InferenceOptions:
        """The options as applied (REFERENCE for the eager reference)."""
        return self.inference_path.options

    @property
    def device(self) -> torch.device:
        return self._inference_request[0] if self._inference_request else self._parameter_device()

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def image_size(self) -> int:
        return self.config.model.image_size

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) camera frames are resized to before the network (256×320 for the released RT-1, which
        resizes them to image_size itself)."""
        return self.config.model.frame_size

    def set_instruction(self, instruction: str) -> None:
        """Start an episode on ``instruction``: embedded once, the frame history restarts (cached tokens were
        conditioned on the previous instruction). One that cannot be embedded (not in a precomputed embedding map)
        clears the previous one before the error propagates: better no task than the previous one by mistake."""
        try:
            self._conditioning = self._embed(instruction)
        except Exception:
            self.clear_instruction()
            raise
        self.instruction = instruction
        self.history.clear()

    def clear_instruction(self) -> None:
        self.instruction = None
        self._conditioning = None
        self.history.clear()

    def reset(self) -> None:
        """Restart the frame history, keeping the instruction."""
        self.history.clear()

    @torch.inference_mode()
    def select_action(self, rgb: np.ndarray) -> PolicyStep:
        """rgb (H,W,3) uint8 of the newest frame -> tokens and decoded action (mode as its class index)."""
        path = self.inference_path
        if self._conditioning is None:
            raise RuntimeError("no instruction set")
        started = time.perf_counter()
        frame = images_to_tensor(resize_for_model(rgb, self.frame_size)).unsqueeze(0)  # (1,3,h,w)
        frame = frame.to(self.device, self._dtype, non_blocking=True)
        self.history.push(path.encode_frame(frame, self._conditioning)[0])  # (K,D)
        # (1,T,K,D); fewer frames only in the released layout's first steps
        logits = window_logits(path, self.history.window())  # (1,11,bins)
        if not torch.isfinite(logits).all():
            # argmax over NaN logits still yields valid-looking tokens: refuse them here, the caller holds the robot.
            raise FloatingPointError("the model produced non-finite logits")
        tokens = self.tokenizer.tokens_from_logits(logits.float())[0].cpu().numpy()  # sync point on CUDA
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return PolicyStep(tokens=tokens, action=self.tokenizer.decode(tokens), inference_ms=elapsed_ms)

    @torch.inference_mode()
    def attention_maps(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H,W,3) uint8 -> (K,g,g) float: the TokenLearner's attention over the feature grid for the current
        instruction, from the network itself (an ONNX inference path does not expose it)."""
        if self.instruction is None:
            raise RuntimeError("no instruction set")
        frame = images_to_tensor(resize_for_model(rgb, self.frame_size)).unsqueeze(0)  # (1,3,h,w)
        parameter = next(self.model.parameters())
        embedding = self.embed_text(self.instruction).reshape(1, -1).to(parameter.device, parameter.dtype)
        conditioning = self.model.embed_instruction(embedding)  # (1,D)
        maps = self.model.token_attention(frame.to(parameter.device, parameter.dtype), conditioning)  # (1,K,g,g)
        return maps[0].float().cpu().numpy()

    def _embed(self, instruction: str) -> torch.Tensor:
        if self.embed_text is None:
            raise RuntimeError("this policy has no text encoder: pass embed_text to set instructions")
        path = self.inference_path
        embedding = self.embed_text(instruction).reshape(1, -1).to(self.device, self._dtype)
        with torch.inference_mode():
            return path.model.embed_instruction(embedding)  # (1,D)

    def _parameter_device(self) -> torch.device:
        return next(self.model.parameters()).device
