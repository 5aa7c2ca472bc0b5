"""Inference fast paths for the control step, each checked against the eager fp32 reference.

A path turns a trained `RT1` into the two calls a control step makes: encode the newest frame, and run the
transformer over the cached window. What is available:

- ``fold_batch_norm``: every Conv2d → BatchNorm2d pair of the FiLM-EfficientNet becomes one Conv2d with a bias
  (eval-mode BatchNorm is an affine map per channel, so this is exact up to float rounding). It removes three
  full passes over the expanded MBConv feature maps per block.
- ``channels_last``: NHWC weights and activations; oneDNN's depthwise and 1×1 convolutions are faster in it on CPU.
- ``num_threads``: intra-op threads. 0 leaves torch's choice. On a small CPU shared with other processes, fewer
  threads than cores is faster: OpenMP workers busy-wait at every barrier, and a preempted worker stalls the rest
  (README "Performance" has the numbers).
- CUDA only: ``cuda_dtype`` (float32 / bfloat16 / float16 weights and activations) and ``cuda_executor``:
  ``eager``, ``compile`` (torch.compile, default mode) or ``cuda_graph`` (each of the two calls captured once into
  a CUDA graph with static input buffers and replayed; it removes the per-kernel launch cost that dominates a
  batch-1 step of a ~300-kernel network).

- ``backend``: who runs the two calls. ``torch`` (the paths above; the reference, and the only one on CUDA),
  ``onnxruntime`` or ``openvino`` (CPU only: ONNX exports of the two calls, `rt1_ros.runtime.onnx_backends`), or
  ``auto``: on an x86 CPU the backend `auto_cpu_backend` names for the model's frame size, torch anywhere else. A
  backend that is not installed or fails to export or load falls back with one warning: ``auto``'s openvino to
  onnxruntime, anything else to torch.
  ``openvino_dtype`` bfloat16 is opt-in only (README "Performance": tokens checked on the trained model first).

None of these changes a parameter value the model was trained with; `tokens_agree` is the check that a path
gives the reference's action tokens on fixed inputs.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import platform
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from rt1_ros.action_layout import MODE_CLASSES
from rt1_ros.model.action_tokenizer import tokens_from_logits
from rt1_ros.model.rt1 import RT1
from rt1_ros.node.parameter_spec import parameter as ros_parameter
from rt1_ros.runtime.frame_history import FrameTokenHistory

CUDA_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CUDA_EXECUTORS = ("eager", "compile", "cuda_graph")
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
# What ``auto`` runs on an x86 CPU: per model size, the fastest backend whose tokens were identical to torch's in
# `rt1-bench --sections backends` (README "Performance" has the run). ONNX Runtime won on the small models (the
# shipped 128 px model: 7.2 ms vs OpenVINO's 8.1 on one thread) and OpenVINO on the paper size (300 px: 1.8-2.5x the
# torch path against ONNX Runtime's 1.6-1.9x, in every run on two CPUs), so the frame size decides.
AUTO_CPU_BACKEND = "onnxruntime"
AUTO_CPU_BACKEND_LARGE = "openvino"
AUTO_LARGE_IMAGE_SIZE = 224  # px: frames this size and larger run AUTO_CPU_BACKEND_LARGE (paper 300, official 300)
OPENVINO_DTYPES = ("float32", "bfloat16")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")

logger = logging.getLogger(__name__)

# (conv attribute, batch-norm attribute) pairs in the FiLM-EfficientNet's Stem and MBConv modules.
CONV_BN_PAIRS = (("conv", "bn"), ("expand_conv", "expand_bn"), ("depthwise_conv", "depthwise_bn"),
                 ("project_conv", "project_bn"))


@dataclass(frozen=True)
class InferenceOptions:
    fold_batch_norm: bool = True
    channels_last: bool = True
    # rt1_node's inference_threads parameter (the other options are no ROS parameters)
    num_threads: int = ros_parameter(0, "intra-op CPU threads for inference; 0 = torch's default (all cores). On "
                                     "a small or shared CPU use 1 (README: Performance)", range=(0, 256),
                                     read_only=True, name="inference_threads")
    cuda_dtype: str = "float32"
    cuda_executor: str = "eager"
    # rt1_node's inference_backend parameter
    backend: str = ros_parameter("auto", "who runs the model on a CPU: torch, onnxruntime or openvino (ONNX exports "
                                 "of the model, rt1-export); auto = on x86 onnxruntime for frames under 224 px, "
                                 "openvino from 224 px (paper size), torch elsewhere. CUDA always runs torch "
                                 "(README: Performance)", choices=BACKENDS, read_only=True,
                                 name="inference_backend")
    openvino_dtype: str = "float32"
    # rt1_node's inference_export_cache parameter
    export_cache: bool = ros_parameter(False, "keep the ONNX export an onnxruntime/openvino backend makes (beside the "
                                       "checkpoint, else ~/.cache/rt1_ros/onnx) for the next start; false: export "
                                       "to a temporary folder, removed once loaded (the node writes no files). "
                                       "rt1-export <checkpoint> caches it ahead", read_only=True,
                                       name="inference_export_cache")

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got '{self.backend}'")
        if self.openvino_dtype not in OPENVINO_DTYPES:
            raise ValueError(f"openvino_dtype must be one of {OPENVINO_DTYPES}, got '{self.openvino_dtype}'")
        if self.cuda_dtype not in CUDA_DTYPES:
            raise ValueError(f"cuda_dtype must be one of {tuple(CUDA_DTYPES)}, got '{self.cuda_dtype}'")
        if self.cuda_executor not in CUDA_EXECUTORS:
            raise ValueError(f"cuda_executor must be one of {CUDA_EXECUTORS}, got '{self.cuda_executor}'")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch's default), got {self.num_threads}")

    def dtype_on(self, device: torch.device) -> torch.dtype:
        """Reduced precision is a CUDA option only: CPU inference stays fp32, where tokens are checked exactly."""
        return CUDA_DTYPES[self.cuda_dtype] if device.type == "cuda" else torch.float32

    def backend_on(self, device: torch.device, image_size: int = 0) -> str:
        """The backend these options run on ``device`` for a model taking ``image_size`` px frames: ``auto``
        resolved, and torch on any non-CPU device (the ONNX backends run on the CPU)."""
        if device.type != "cpu":
            return "torch"
        if self.backend == "auto":
            return auto_cpu_backend(image_size) if platform.machine().lower() in X86_MACHINES else "torch"
        return self.backend

    def describe(self, device: torch.device) -> str:
        backend = self.backend_on(device)
        if backend != "torch":
            threads = f", {self.num_threads} thread{'s' if self.num_threads > 1 else ''}" if self.num_threads else ""
            precision = " bf16" if backend == "openvino" and self.openvino_dtype == "bfloat16" else ""
            return f"{backend}{precision}{threads}"
        parts = []
        if self.fold_batch_norm:
            parts.append("bn-folded")
        if self.channels_last:
            parts.append("channels-last")
        if self.num_threads:
            parts.append(f"{self.num_threads} thread{'s' if self.num_threads > 1 else ''}")
        if device.type == "cuda":
            parts += [self.cuda_dtype, self.cuda_executor]
        return ", ".join(parts) or "eager reference"


REFERENCE = InferenceOptions(fold_batch_norm=False, channels_last=False, backend="torch")


def auto_cpu_backend(image_size: int) -> str:
    """What ``auto`` runs on an x86 CPU for a model taking ``image_size`` px frames."""
    return AUTO_CPU_BACKEND_LARGE if image_size >= AUTO_LARGE_IMAGE_SIZE else AUTO_CPU_BACKEND


def fold_batch_norms(model: nn.Module) -> int:
    """Fold each eval-mode BatchNorm2d into the Conv2d before it, in place; returns how many were folded."""
    if model.training:
        raise RuntimeError("batch norm folding uses the running statistics: call model.eval() first")
    folded = 0
    for module in list(model.modules()):
        for conv_name, bn_name in CONV_BN_PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                                bn.weight, bn.bias)
            conv.weight, conv.bias = weight, bias
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def prepare_model(model: RT1, options: InferenceOptions, device: torch.device) -> RT1:
    """An eval-mode copy of ``model`` on ``device`` with the options applied; ``model`` itself is left as it is
    (callers and tests keep it as the reference)."""
    if options.num_threads:
        torch.set_num_threads(options.num_threads)
    prepared = copy.deepcopy(model).eval()
    if options.fold_batch_norm:
        fold_batch_norms(prepared)
    prepared = prepared.to(device=device, dtype=options.dtype_on(device))
    if options.channels_last:
        prepared.image_encoder.to(memory_format=torch.channels_last)
    for parameter in prepared.parameters():
        parameter.requires_grad_(False)
    return prepared


class EagerPath:
    """The two calls of a control step, run eagerly on a prepared model."""

    def __init__(self, model: RT1, options: InferenceOptions) -> None:
        self.model = model
        self.options = options

    def encode_frame(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """frame (1,3,h,w), conditioning (1,D) -> tokens (1,K,D)."""
        if self.options.channels_last:
            frame = frame.contiguous(memory_format=torch.channels_last)
        return self.model.encode_frame(frame, conditioning)

    def logits(self, window: torch.Tensor) -> torch.Tensor:
        """window (1,T,K,D) -> logits (1,11,bins)."""
        return self.model.logits_from_frame_tokens(window)


class CompiledPath(EagerPath):
    """torch.compile of both calls. The first call of each compiles (tens of seconds): warm it up before use."""

    def __init__(self, model: RT1, options: InferenceOptions) -> None:
        super().__init__(model, options)
        self._encode = torch.compile(model.encode_frame, dynamic=False)
        self._logits = torch.compile(model.logits_from_frame_tokens, dynamic=False)

    def encode_frame(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        if self.options.channels_last:
            frame = frame.contiguous(memory_format=torch.channels_last)
        return self._encode(frame, conditioning)

    def logits(self, window: torch.Tensor) -> torch.Tensor:
        return self._logits(window)


class CudaGraphPath(EagerPath):
    """Both calls captured into CUDA graphs on first use; later calls copy into static inputs and replay.

    Outputs are cloned: a replay overwrites the static output, and frame tokens outlive the step in the history.
    """

    WARMUP_RUNS = 3  # cuDNN/cuBLAS pick algorithms and allocate workspaces on a side stream before capture

    def __init__(self, model: RT1, options: InferenceOptions) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("the cuda_graph path needs a CUDA device")
        super().__init__(model, options)
        self._encode_graph: torch.cuda.CUDAGraph | None = None
        self._logits_graph: torch.cuda.CUDAGraph | None = None

    def _capture(self, run, static_inputs: tuple[torch.Tensor, ...]):
        side_stream = torch.cuda.Stream()
        side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side_stream):
            for _ in range(self.WARMUP_RUNS):
                run(*static_inputs)
        torch.cuda.current_stream().wait_stream(side_stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = run(*static_inputs)
        return graph, static_output

    def encode_frame(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        if self._encode_graph is None:
            memory_format = torch.channels_last if self.options.channels_last else torch.contiguous_format
            self._frame = frame.clone(memory_format=memory_format)
            self._conditioning = conditioning.clone()
            self._encode_graph, self._tokens = self._capture(self.model.encode_frame,
                                                             (self._frame, self._conditioning))
        self._frame.copy_(frame)
        self._conditioning.copy_(conditioning)
        self._encode_graph.replay()
        return self._tokens.clone()

    def logits(self, window: torch.Tensor) -> torch.Tensor:
        if self._logits_graph is None:
            self._window = window.clone()
            self._logits_graph, self._logits = self._capture(self.model.logits_from_frame_tokens, (self._window,))
        self._window.copy_(window)
        self._logits_graph.replay()
        return self._logits.clone()


def build_path(model: RT1, options: InferenceOptions, device: torch.device) -> EagerPath:
    """The prepared model behind the backend and executor the options ask for (CUDA executors need a CUDA device;
    the ONNX backends run on the CPU). The path's ``options`` say which backend it runs (``auto`` resolved; after a
    fallback, the one that runs: ``auto``'s openvino falls back to onnxruntime, then torch; a named backend to
    torch)."""
    backend = options.backend_on(device, model.config.image_size)
    if options.backend not in ("auto", backend):
        logger.warning("inference backend '%s' runs on the CPU only; running torch on %s", options.backend, device)
    onnx_backends = [] if backend == "torch" else [backend]
    if options.backend == "auto" and backend not in ("torch", AUTO_CPU_BACKEND):
        onnx_backends.append(AUTO_CPU_BACKEND)
    prepared = prepare_model(model, dataclasses.replace(options, backend=backend), device)
    for index, candidate in enumerate(onnx_backends):
        options = dataclasses.replace(options, backend=candidate)
        try:
            from rt1_ros.runtime.onnx_backends import build_onnx_path

            return build_onnx_path(model, prepared, options, candidate)
        except Exception as exc:  # a missing runtime or a failed export must not stop the robot: torch still runs
            instead = onnx_backends[index + 1] if index + 1 < len(onnx_backends) else "torch"
            logger.warning("inference backend '%s' is unavailable (%s: %s); running %s instead", candidate,
                           type(exc).__name__, exc, instead)
    options = dataclasses.replace(options, backend="torch")
    if device.type != "cuda" or options.cuda_executor == "eager":
        return EagerPath(prepared, options)
    if options.cuda_executor == "compile":
        return CompiledPath(prepared, options)
    return CudaGraphPath(prepared, options)


def window_logits(path: EagerPath, window: torch.Tensor) -> torch.Tensor:
    """window (1,T',K,D) -> logits (1,11,bins) on ``path``. Exported and captured graphs have a fixed window of T
    frames; the short first windows of the released layout run eagerly on the path's own prepared torch copy."""
    if window.shape[1] == path.model.config.num_frames:
        return path.logits(window)
    return path.model.logits_from_frame_tokens(window)


@torch.inference_mode()
def reference_and_candidate_tokens(reference: RT1, path: EagerPath, frames: torch.Tensor, conditioning: torch.Tensor,
                                   num_modes: int = len(MODE_CLASSES)) -> tuple[torch.Tensor, torch.Tensor, float]:
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
