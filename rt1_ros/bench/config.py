"""rt1-bench settings: `BenchConfig`, read from a section (`default`, `smoke`) of config/bench.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rt1_ros.configuration.yaml_config import config_dir, load_dataclass


@dataclass(frozen=True)
class ThroughputConfig:
    batches: dict[str, int] = field(default_factory=lambda: {"tiny": 16, "paper": 4})
    steps: int = 3
    warmup_steps: int = 1


@dataclass(frozen=True)
class NodeBenchConfig:
    model_size: str = "paper"
    messages: int = 50
    warmup_messages: int = 5
    image_width: int = 640
    image_height: int = 480
    timeout_s: float = 120.0  # for the node process to start (an ONNX export of the paper size included) and answer


@dataclass(frozen=True)
class NodeCpuBenchConfig:
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    image_width: int = 640
    image_height: int = 480
    camera_fps: float = 30.0
    control_rate_hz: float = 3.0
    settle_s: float = 5.0  # after the first actions, before the window opens
    window_s: float = 20.0
    timeout_s: float = 120.0  # for the node process to start and answer


@dataclass(frozen=True)
class LucidrainsConfig:
    enabled: bool = True
    image_size: int = 224
    steps: int = 10
    warmup_steps: int = 2


@dataclass(frozen=True)
class ProfileConfig:
    model_size: str = "paper"
    steps: int = 5


@dataclass(frozen=True)
class CudaBenchConfig:
    steps: int = 50
    warmup_steps: int = 10
    executors: tuple[str, ...] = ("eager", "compile", "cuda_graph")
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")
    min_token_agreement: float = 0.99


@dataclass(frozen=True)
class BackendsBenchConfig:
    # "trained" is the shipped models/rt1_sim (tokens checked on simulator frames); other names are sizes of
    # config/model.yaml, untrained (their token checks are flagged vacuous when the output ignores the frame).
    models: tuple[str, ...] = ("trained", "paper")
    backends: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
    threads: tuple[int, ...] = (1, 2)
    warmup_steps: int = 5
    steps: int = 50  # per backend and thread count, timed in `rounds` interleaved rounds
    rounds: int = 5  # load from other jobs drifts; interleaving makes it fall on every backend alike
    check_frames: int = 8
    openvino_bf16: bool = False  # opt-in: also time OpenVINO at bf16 (never the default unless its tokens agree)


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[str, ...] = ("tiny", "paper")
    num_threads: int = 1
    warmup_steps: int = 5
    steps: int = 50
    check_frames: int = 8
    thread_sweep: tuple[int, ...] = (1, 2)
    thread_sweep_steps: int = 15
    max_seconds_per_measurement: float = 240.0
    throughput: ThroughputConfig = field(default_factory=ThroughputConfig)
    node: NodeBenchConfig = field(default_factory=NodeBenchConfig)
    node_cpu: NodeCpuBenchConfig = field(default_factory=NodeCpuBenchConfig)
    lucidrains: LucidrainsConfig = field(default_factory=LucidrainsConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    cuda: CudaBenchConfig = field(default_factory=CudaBenchConfig)
    backends: BackendsBenchConfig = field(default_factory=BackendsBenchConfig)

    @classmethod
    def from_yaml(cls, section: str = "default", path: str | Path | None = None) -> "BenchConfig":
        return load_dataclass(cls, path or config_dir() / "bench.yaml", section=section)
