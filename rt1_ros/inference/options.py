"""How the control step's two calls run: every inference option in one typed config.

- ``fold_batch_norm``: every Conv2d → BatchNorm2d pair of the FiLM-EfficientNet becomes one Conv2d with a bias
  (eval-mode BatchNorm is an affine map per channel, so this is exact up to float rounding). It removes three
  full passes over the expanded MBConv feature maps per block (`rt1_ros.inference.model_preparation`).
- ``channels_last``: NHWC weights and activations; oneDNN's depthwise and 1×1 convolutions are faster in it on CPU.
- ``num_threads``: intra-op threads. 0 leaves torch's choice. On a small CPU shared with other processes, fewer
  threads than cores is faster: OpenMP workers busy-wait at every barrier, and a preempted worker stalls the rest
  (docs/performance.md has the numbers).
- CUDA only: ``cuda_dtype`` (float32 / bfloat16 / float16 weights and activations) and ``cuda_executor``:
  ``eager``, ``compile`` (torch.compile, default mode) or ``cuda_graph`` (each of the two calls captured once into
  a CUDA graph with static input buffers and replayed; it removes the per-kernel launch cost that dominates a
  batch-1 step of a ~300-kernel network).
- ``backend``: who runs the two calls. ``torch`` (the reference, and the only one on CUDA), ``onnxruntime`` or
  ``openvino`` (CPU only: ONNX exports of the two calls, `rt1_ros.inference.onnx_backends`), or ``auto``: on an x86
  CPU the backend `auto_cpu_backend` names for the model's frame size, torch anywhere else
  (`rt1_ros.inference.paths.build_path` falls back when one is unavailable). ``openvino_dtype`` bfloat16 is opt-in
  only (docs/performance.md: tokens checked on the trained model first).

None of these changes a parameter value the model was trained with; `rt1_ros.inference.parity` checks that a path
gives the reference's action tokens on fixed inputs. Three options are rt1_node ROS parameters, declared here with
their descriptions (`rt1_ros.configuration.parameter_spec`).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from rt1_ros.configuration.parameter_spec import parameter as ros_parameter

CUDA_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CUDA_EXECUTORS = ("eager", "compile", "cuda_graph")
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
# What ``auto`` runs on an x86 CPU: per frame size, the fastest backend whose tokens were identical to torch's in
# `rt1-bench --sections backends` (docs/performance.md has the runs): ONNX Runtime on the small models, OpenVINO on
# the paper size, so the frame size decides.
AUTO_CPU_BACKEND = "onnxruntime"
AUTO_CPU_BACKEND_LARGE = "openvino"
AUTO_LARGE_IMAGE_SIZE = 224  # px: frames this size and larger run AUTO_CPU_BACKEND_LARGE (paper 300, official 300)
OPENVINO_DTYPES = ("float32", "bfloat16")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


@dataclass(frozen=True)
class InferenceOptions:
    fold_batch_norm: bool = True
    channels_last: bool = True
    # rt1_node's inference_threads parameter (the other options are no ROS parameters)
    num_threads: int = ros_parameter(0, "intra-op CPU threads for inference; 0 = torch's default (all cores). On "
                                     "a small or shared CPU use 1 (docs/performance.md)", range=(0, 256),
                                     read_only=True, name="inference_threads")
    cuda_dtype: str = "float32"
    cuda_executor: str = "eager"
    # rt1_node's inference_backend parameter
    backend: str = ros_parameter("auto", "who runs the model on a CPU: torch, onnxruntime or openvino (ONNX exports "
                                 "of the model, rt1-export); auto = on x86 onnxruntime for frames under 224 px, "
                                 "openvino from 224 px (paper size), torch elsewhere. CUDA always runs torch "
                                 "(docs/performance.md)", choices=BACKENDS, read_only=True,
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
