"""The control step's two calls on ONNX exports (`rt1_ros.inference.onnx_export`), run by ONNX Runtime or OpenVINO
on the CPU, behind the same interface as the torch paths (`rt1_ros.inference.paths.InferencePath`).

A path keeps a prepared torch copy of the model as ``.model``: the policy embeds the instruction with it once per
instruction, and reads the config from it. Tensors cross as numpy arrays; outputs are copied, because frame tokens
outlive the step in the history while both runtimes may reuse their output buffers.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import torch

from rt1_ros.model.rt1 import RT1
from rt1_ros.inference.options import InferenceOptions
from rt1_ros.inference.onnx_export import OnnxExport


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """float32, C-contiguous (a channels-last frame is a strided view), on the CPU."""
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())


class OnnxRuntimePath:
    """ONNX Runtime's CPU execution provider, all graph optimisations, one session per graph."""

    backend = "onnxruntime"

    def __init__(self, model: RT1, options: InferenceOptions, export: OnnxExport) -> None:
        import onnxruntime  # telemetry is off: rt1_ros/__init__.py sets ORT_DISABLE_TELEMETRY

        self.model = model
        self.options = options
        self.export = export
        settings = onnxruntime.SessionOptions()
        settings.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        settings.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        settings.intra_op_num_threads = options.num_threads  # 0: onnxruntime's default (the physical cores)
        settings.inter_op_num_threads = 1
        # Workers spinning between the two calls and between steps take a shared core from the other processes
        # (the camera, the executor) and gain a step nothing at 3 Hz.
        settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self._encoder = onnxruntime.InferenceSession(str(export.encoder), settings, providers=providers)
        self._transformer = onnxruntime.InferenceSession(str(export.transformer), settings, providers=providers)

    def encode_frame(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """frame (1,3,h,w), conditioning (1,D) -> tokens (1,K,D)."""
        (tokens,) = self._encoder.run(None, {"frame": as_array(frame), "conditioning": as_array(conditioning)})
        return torch.from_numpy(tokens)

    def logits(self, window: torch.Tensor) -> torch.Tensor:
        """window (1,T,K,D) -> logits (1,11,bins)."""
        (logits,) = self._transformer.run(None, {"window": as_array(window)})
        return torch.from_numpy(logits)

    def describe(self) -> str:
        return "onnxruntime fp32"


OPENVINO_PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}


def import_openvino() -> types.ModuleType:
    """``import openvino`` without its model converter.

    Why: openvino/__init__.py imports ``openvino.tools.ovc`` (the converter), and that import starts OpenVINO's
    usage telemetry, which writes a client id under ~/intel and sends usage data unless the user opted out. The
    runtime API loads ONNX itself and needs none of it, and a running node must neither write to the home folder
    nor phone home. A module without ``convert_model`` in the converter's place makes openvino skip it (its
    __init__ catches the ImportError); the placeholder is removed again, so an explicit import of the converter
    still gets the real one."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    placeholder = types.ModuleType("openvino.tools.ovc")
    sys.modules.setdefault("openvino.tools.ovc", placeholder)
    try:
        import openvino
    finally:
        if sys.modules.get("openvino.tools.ovc") is placeholder:
            del sys.modules["openvino.tools.ovc"]
    return openvino


class OpenVinoPath:
    """OpenVINO's CPU plugin, latency hint (one stream), one compiled model and infer request per graph.

    Precision is f32 unless ``options.openvino_dtype`` asks for bf16: OpenVINO's CPU plugin would otherwise pick
    bf16 by itself on CPUs with AMX/AVX512-BF16, which changes tokens without anyone having checked them."""

    backend = "openvino"

    def __init__(self, model: RT1, options: InferenceOptions, export: OnnxExport) -> None:
        openvino = import_openvino()
        self.model = model
        self.options = options
        self.export = export
        core = openvino.Core()
        settings = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                    "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[options.openvino_dtype]}
        if options.num_threads:
            settings["INFERENCE_NUM_THREADS"] = options.num_threads
        self._encoder = core.compile_model(str(export.encoder), "CPU", settings)
        self._transformer = core.compile_model(str(export.transformer), "CPU", settings)
        self._encode_request = self._encoder.create_infer_request()
        self._logits_request = self._transformer.create_infer_request()

    @property
    def precision(self) -> str:
        """The precision OpenVINO runs at (a CPU without bf16 support runs f32 whatever was asked)."""
        precision = self._encoder.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type
        return precision.to_string() if hasattr(precision, "to_string") else str(precision)

    def encode_frame(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        self._encode_request.infer({"frame": as_array(frame), "conditioning": as_array(conditioning)})
        return torch.from_numpy(self._encode_request.get_output_tensor(0).data.copy())

    def logits(self, window: torch.Tensor) -> torch.Tensor:
        self._logits_request.infer({"window": as_array(window)})
        return torch.from_numpy(self._logits_request.get_output_tensor(0).data.copy())

    def describe(self) -> str:
        return f"openvino {self.precision}"


ONNX_PATHS = {"onnxruntime": OnnxRuntimePath, "openvino": OpenVinoPath}


def build_onnx_path(model: RT1, prepared: RT1, options: InferenceOptions, backend: str):
    """Load ``model``'s export into ``backend``: a cached one when valid, else a fresh one, kept in the cache when
    ``options.export_cache``, else made in a temporary folder and removed once loaded. ``prepared`` is the torch
    copy the path keeps as ``.model``. Raises ImportError when the runtime is not installed, anything the exporter or
    the runtime raises otherwise (build_path falls back to torch on either)."""
    from rt1_ros.inference.onnx_export import cached_export, find_export, temporary_export

    path_type = ONNX_PATHS[backend]
    import_openvino() if backend == "openvino" else __import__(backend)  # fail before exporting when missing
    if options.export_cache:
        return path_type(prepared, options, cached_export(model))
    found = find_export(model)
    if found is not None:
        return path_type(prepared, options, found)
    with temporary_export(model) as export:
        return path_type(prepared, options, export)
