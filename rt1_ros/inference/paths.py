"""Inference paths: the two calls a control step makes (encode the newest frame; run the transformer over the cached
window), behind one `InferencePath` protocol, on torch (eager, torch.compile, CUDA graphs) or an ONNX backend
(`rt1_ros.inference.onnx_backends`). `build_path` picks the one the options ask for and falls back, with one
warning, when a backend is missing or fails: ``auto``'s openvino to onnxruntime, anything else to torch.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

import torch

from rt1_ros.inference.model_preparation import prepare_model
from rt1_ros.inference.options import AUTO_CPU_BACKEND, InferenceOptions
from rt1_ros.model.rt1 import RT1

logger = logging.getLogger(__name__)


class InferencePath(Protocol):
    """What a control step calls. ``model`` is the prepared torch copy (its config; the eager fallback for windows
    an exported graph does not take), ``options`` the options it runs with (backend resolved)."""

    model: RT1
    options: InferenceOptions

    def encode_frame(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """frame (1,3,h,w), conditioning (1,D) -> tokens (1,K,D)."""

    def logits(self, window: torch.Tensor) -> torch.Tensor:
        """window (1,T,K,D) -> logits (1,11,bins)."""


class TorchPath:
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


class CompiledPath(TorchPath):
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


class CudaGraphPath(TorchPath):
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


def build_path(model: RT1, options: InferenceOptions, device: torch.device) -> InferencePath:
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
            from rt1_ros.inference.onnx_backends import build_onnx_path

            return build_onnx_path(model, prepared, options, candidate)
        except Exception as exc:  # a missing runtime or a failed export must not stop the robot: torch still runs
            instead = onnx_backends[index + 1] if index + 1 < len(onnx_backends) else "torch"
            logger.warning("inference backend '%s' is unavailable (%s: %s); running %s instead", candidate,
                           type(exc).__name__, exc, instead)
    options = dataclasses.replace(options, backend="torch")
    if device.type != "cuda" or options.cuda_executor == "eager":
        return TorchPath(prepared, options)
    if options.cuda_executor == "compile":
        return CompiledPath(prepared, options)
    return CudaGraphPath(prepared, options)


def window_logits(path: InferencePath, window: torch.Tensor) -> torch.Tensor:
    """window (1,T',K,D) -> logits (1,11,bins) on ``path``. Exported and captured graphs have a fixed window of T
    frames; the short first windows of the released layout run eagerly on the path's own prepared torch copy."""
    if window.shape[1] == path.model.config.num_frames:
        return path.logits(window)
    return path.model.logits_from_frame_tokens(window)
