"""rt1-bench: control-step latency, training throughput, memory, node overhead and a profile of RT-1.

    rt1-bench [--smoke] [--output bench.json] [--config config/bench.yaml] [--sections latency,node,...]
    python -m rt1_ros.bench --smoke

Sections (each one a key of the JSON written to --output, and a block of the printed table):
- machine: CPU, cores, load average before/after, torch and its thread count; other engineers' jobs share this
  CPU, so every latency is reported as median / p90 / p99 and with the load it was taken under;
- latency: per model size, the cached control step (`Policy.step`: encode the newest frame, transformer over the
  cached window) vs the full 6-frame recompute (`RT1.forward`), on the eager reference and on the optimised path
  (`rt1_ros.runtime.inference_optimisation`), with their tokens compared step by step; plus a thread sweep;
- throughput: training-shaped batches (B,6,3,S,S), forward + cross-entropy + backward, samples/s;
- memory: peak RSS of each section (VmHWM, reset between sections); CUDA max allocated when on a GPU;
- node: image message in → Twist out over real topics (rclpy, Fast DDS, a peer node in the same process), minus
  the model time the node reports in rt1_action.inference_ms = node overhead;
- lucidrains: `robotic-transformer-pytorch` (MaxViT RT-1, its README configuration) at the same batch and frames,
  when importable; "not installed" otherwise;
- cuda: eager / torch.compile / CUDA graphs × fp32 / bf16 / fp16, token agreement with fp32, the fastest correct
  path; skipped without CUDA;
- profile: where a paper-size control step spends its time (stem, MBConv stages, FiLM, token learner,
  transformer, heads), from forward hooks, plus torch.profiler's top operators.

Times are wall clock (`perf_counter`). With one intra-op thread the CPU time of the calling thread is reported
too: it is what the step costs when the CPU is not shared, so it separates our cost from the neighbours' load.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from rt1_ros.action_layout import MODE_DIM, NUM_ACTION_DIMS, ActionSpaceConfig
from rt1_ros.model.action_tokenizer import ActionTokenizer
from rt1_ros.model.rt1 import RT1, RT1Config, count_parameters
from rt1_ros.runtime.frame_history import pad_window_indices
from rt1_ros.runtime.image_decoding import resize_for_model
from rt1_ros.runtime.inference_optimisation import (CUDA_DTYPES, REFERENCE, InferenceOptions, build_path,
                                                    reference_and_candidate_tokens, tokens_agree)
from rt1_ros.runtime.policy import Policy, images_to_tensor
from rt1_ros.yaml_config import config_dir, load_dataclass, to_mapping

SECTIONS = ("latency", "throughput", "node", "lucidrains", "cuda", "profile")
INSTRUCTION = "pick up the red cube"
TARGET_CACHED_SPEEDUP = 5.0
TARGET_PAPER_STEPS_PER_S = 3.0
TARGET_NODE_OVERHEAD_MS = 2.0


# -- configuration ---------------------------------------------------------------------------------------------
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
    timeout_s: float = 30.0


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
    lucidrains: LucidrainsConfig = field(default_factory=LucidrainsConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    cuda: CudaBenchConfig = field(default_factory=CudaBenchConfig)

    @classmethod
    def from_yaml(cls, section: str = "default", path: str | Path | None = None) -> "BenchConfig":
        return load_dataclass(cls, path or config_dir() / "bench.yaml", section=section)


# -- measurement primitives ------------------------------------------------------------------------------------
def summarise_ms(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)), "mean": float(values.mean()), "min": float(values.min()),
            "max": float(values.max())}


@dataclass
class Timings:
    wall_ms: list[float] = field(default_factory=list)
    thread_cpu_ms: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        result = {"wall_ms": summarise_ms(self.wall_ms), "stopped_early": self.stopped_early}
        if self.thread_cpu_ms:
            result["thread_cpu_ms"] = summarise_ms(self.thread_cpu_ms)
        return result


def time_calls(call: Callable[[int], Any], warmup: int, steps: int, max_seconds: float) -> Timings:
    """Run call(i) for warm-up then timed steps; stop timing early (flagged) once ``max_seconds`` have passed."""
    for i in range(warmup):
        call(i)
    synchronise()
    timings = Timings()
    # The calling thread's CPU time only equals the step's CPU time when torch runs no worker threads.
    count_cpu = torch.get_num_threads() == 1 and not torch.cuda.is_available()
    deadline = time.perf_counter() + max_seconds
    for i in range(steps):
        cpu_started, started = time.thread_time(), time.perf_counter()
        call(warmup + i)
        synchronise()
        timings.wall_ms.append((time.perf_counter() - started) * 1000.0)
        if count_cpu:
            timings.thread_cpu_ms.append((time.thread_time() - cpu_started) * 1000.0)
        if time.perf_counter() > deadline and i + 1 < steps:
            timings.stopped_early = True
            break
    return timings


def synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PeakMemory:
    """Peak resident memory of this process over a section: Linux's VmHWM, reset on entry through clear_refs."""

    def __enter__(self) -> "PeakMemory":
        self.reset_supported = _reset_peak_rss()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        self.peak_rss_mb = _status_kb("VmHWM") / 1024.0
        self.cuda_max_allocated_mb = (torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available()
                                      else None)

    def as_dict(self) -> dict[str, Any]:
        result = {"peak_rss_mb": round(self.peak_rss_mb, 1)}
        if not self.reset_supported:
            result["note"] = "peak RSS could not be reset: this is the process's peak so far"
        if self.cuda_max_allocated_mb is not None:
            result["cuda_max_allocated_mb"] = round(self.cuda_max_allocated_mb, 1)
        return result


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def machine_state() -> dict[str, Any]:
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu_model, "logical_cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
            "torch": torch.__version__, "torch_default_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# -- fixtures --------------------------------------------------------------------------------------------------
def untrained_model(size: str, seed: int = 0) -> RT1:
    """A freshly initialised RT-1 with BatchNorm statistics and FiLM set away from their identity initialisation,
    so folding and conditioning are exercised as they would be on a trained checkpoint."""
    torch.manual_seed(seed)
    model = RT1(RT1Config.from_yaml(size)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.1, 0.1, generator=generator)
        for film in model.image_encoder.films:
            film.projection.weight.normal_(0.0, 0.01, generator=generator)
    return model


def camera_frames(count: int, size: int, seed: int = 0) -> np.ndarray:
    """(count,H,W,3) uint8: a smooth scene that drifts between frames plus sensor noise (not pure noise, whose
    tokens sit on a knife edge between bins)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = []
    for i in range(count):
        phase = 0.3 * i
        scene = np.stack([np.sin(6 * xs + phase), np.cos(5 * ys - phase), np.sin(4 * (xs + ys) + 2 * phase)], -1)
        noisy = 127.5 * (1 + scene) + rng.normal(0, 8, scene.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(frames)


def instruction_embedding(seed: int = 0) -> torch.Tensor:
    return torch.randn(384, generator=torch.Generator().manual_seed(seed))


# -- latency ---------------------------------------------------------------------------------------------------
def make_policy(model: RT1, options: InferenceOptions | None, device: torch.device) -> Policy:
    embedding = instruction_embedding()
    policy = Policy(model, ActionTokenizer(ActionSpaceConfig.from_yaml()), lambda text: embedding, device,
                    inference=options)
    policy.set_instruction(INSTRUCTION)
    return policy


def cached_steps(policy: Policy, frames: np.ndarray, config: BenchConfig, steps: int | None = None,
                 warmup: int | None = None) -> tuple[Timings, list[np.ndarray]]:
    """Policy.step on consecutive frames from an empty history; returns timings and every step's tokens."""
    policy.reset()
    tokens: list[np.ndarray] = []

    def step(i: int) -> None:
        tokens.append(policy.step(frames[i % len(frames)]).tokens)

    timings = time_calls(step, config.warmup_steps if warmup is None else warmup,
                         config.steps if steps is None else steps, config.max_seconds_per_measurement)
    return timings, tokens


def full_recompute_steps(policy: Policy, frames: np.ndarray, config: BenchConfig) -> tuple[Timings, list[np.ndarray]]:
    """What a step costs without the cache: the same preprocessing, then RT1.forward over the padded 6-frame
    window (the newest frame plus the five before it), on the policy's (possibly optimised) model."""
    model, size, num_frames = policy.model, policy.image_size, policy.model.config.num_frames
    embedding = instruction_embedding().reshape(1, -1).to(policy.device, policy.dtype)
    memory_format = (torch.channels_last if policy.inference_path.options.channels_last
                     else torch.contiguous_format)
    preprocessed: list[torch.Tensor] = []
    tokens: list[np.ndarray] = []

    @torch.inference_mode()
    def step(i: int) -> None:
        frame = images_to_tensor(resize_for_model(frames[i % len(frames)], size))
        preprocessed.append(frame.to(policy.device, policy.dtype))
        window = torch.stack([preprocessed[j] for j in pad_window_indices(len(preprocessed) - 1, num_frames)])
        images = window.unsqueeze(0)  # (1,T,3,S,S)
        logits = model.logits_from_frame_tokens(_encode_window(model, images, embedding, memory_format))
        tokens.append(policy.tokenizer.tokens_from_logits(logits.float())[0].cpu().numpy())

    timings = time_calls(step, config.warmup_steps, config.steps, config.max_seconds_per_measurement)
    return timings, tokens


def _encode_window(model: RT1, images: torch.Tensor, embedding: torch.Tensor,
                   memory_format: torch.memory_format) -> torch.Tensor:
    """RT1.encode_frames with the frames laid out as the prepared encoder expects."""
    batch, frames = images.shape[:2]
    instruction = model.embed_instruction(embedding).repeat_interleave(frames, dim=0)
    flat = images.flatten(0, 1).contiguous(memory_format=memory_format)
    return model.encode_frame(flat, instruction).view(batch, frames, -1, model.config.embed_dim)


def bench_latency(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in config.models:
        model = untrained_model(size)
        frames = camera_frames(max(config.steps + config.warmup_steps, config.check_frames), 320)
        entry: dict[str, Any] = {"parameters_m": round(count_parameters(model) / 1e6, 2),
                                 "image_size": model.config.image_size}
        for name, options in (("reference", None), ("optimised", InferenceOptions())):
            with PeakMemory() as memory:
                policy = make_policy(model, options, device)
                cached, cached_tokens = cached_steps(policy, frames, config)
                full, full_tokens = full_recompute_steps(policy, frames, config)
            compared = min(len(cached_tokens), len(full_tokens))
            identical = all(np.array_equal(a, b) for a, b in zip(cached_tokens[:compared], full_tokens[:compared]))
            entry[name] = {
                "description": (options or REFERENCE).describe(device),
                "cached": cached.as_dict(), "full_recompute": full.as_dict(),
                "speedup_cached_vs_full": _ratio(full.wall_ms, cached.wall_ms),
                "speedup_cached_vs_full_thread_cpu": _ratio(full.thread_cpu_ms, cached.thread_cpu_ms),
                "cached_tokens_equal_full": identical, "steps_compared": compared,
                "memory": memory.as_dict(),
            }
            del policy
        entry["speedup_cached_optimised_vs_full_reference"] = _ratio(
            [entry["reference"]["full_recompute"]["wall_ms"]["median"]],
            [entry["optimised"]["cached"]["wall_ms"]["median"]])
        entry["optimised_vs_reference_tokens"] = check_optimised_tokens(model, frames[:config.check_frames], device)
        results[size] = entry
        del model
    return results


def _ratio(slow: list[float], fast: list[float]) -> float | None:
    if not slow or not fast:
        return None
    return round(float(np.median(slow) / np.median(fast)), 2)


def check_optimised_tokens(model: RT1, frames: np.ndarray, device: torch.device,
                           options: InferenceOptions | None = None) -> dict[str, Any]:
    """Tokens of the optimised path vs the eager fp32 reference on the same fixed frames (cached steps)."""
    options = options or InferenceOptions()
    path = build_path(model, options, device)
    images = images_to_tensor(np.stack([resize_for_model(f, model.config.image_size) for f in frames]))
    conditioning = model.embed_instruction(instruction_embedding()[None]).detach()
    reference_tokens, candidate_tokens, worst = reference_and_candidate_tokens(model, path, images, conditioning)
    return {"options": options.describe(device), "frames": len(frames),
            "token_agreement": tokens_agree(reference_tokens, candidate_tokens),
            "identical": bool(torch.equal(reference_tokens, candidate_tokens)),
            "max_abs_logit_difference": worst}


def bench_thread_sweep(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    size = "paper" if "paper" in config.models else config.models[-1]
    model = untrained_model(size)
    frames = camera_frames(config.thread_sweep_steps + 2, 320)
    policy = make_policy(model, InferenceOptions(), device)
    results = {"model": size, "path": "optimised cached step", "by_threads": {}}
    previous = torch.get_num_threads()
    try:
        for threads in config.thread_sweep:
            torch.set_num_threads(threads)
            timings, _ = cached_steps(policy, frames, config, steps=config.thread_sweep_steps, warmup=2)
            results["by_threads"][str(threads)] = {**timings.as_dict(), "load_average": list(os.getloadavg())}
    finally:
        torch.set_num_threads(previous)
    return results


# -- training throughput ---------------------------------------------------------------------------------------
def bench_throughput(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in config.models:
        batch = config.throughput.batches.get(size)
        if batch:
            results[size] = training_throughput(size, batch, config, device)
    return results


def training_throughput(size: str, batch: int, config: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Forward + cross-entropy over the 11 dimensions + backward on a (batch, 6, 3, S, S) batch, train mode."""
    torch.manual_seed(0)
    model = RT1(RT1Config.from_yaml(size)).to(device).train()
    frames, image_size = model.config.num_frames, model.config.image_size
    images = torch.rand(batch, frames, 3, image_size, image_size, device=device)
    text = torch.randn(batch, 384, device=device)
    targets = torch.randint(0, model.config.num_bins, (batch, NUM_ACTION_DIMS), device=device)

    def step(_: int) -> None:
        model.zero_grad(set_to_none=True)
        logits = model(images, text)
        nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()

    with PeakMemory() as memory:
        timings = time_calls(step, config.throughput.warmup_steps, config.throughput.steps,
                             config.max_seconds_per_measurement)
    median_s = float(np.median(timings.wall_ms)) / 1000.0
    return {"batch": batch, "frames": frames, "image_size": image_size, "step": timings.as_dict(),
            "samples_per_s": round(batch / median_s, 3), "memory": memory.as_dict()}


# -- node path -------------------------------------------------------------------------------------------------
def bench_node(config: BenchConfig) -> dict[str, Any]:
    """Images published one at a time by a peer node; each waits for its Twist (control_trigger: image)."""
    try:
        import rclpy
        from geometry_msgs.msg import Twist
        from rclpy.parameter import Parameter
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from rt1_ros.msg import RT1Action
        from rt1_ros.node.rt1_node import Rt1Node
        from rt1_ros.ros_graph import InProcessGraph
    except ImportError as exc:
        return {"skipped": f"ROS 2 Python or the built messages are missing ({exc}); run `make setup`"}

    from rt1_ros.model.checkpoint import save_pretrained

    settings = config.node
    with tempfile.TemporaryDirectory(prefix="rt1-bench-") as directory:
        model = untrained_model(settings.model_size)
        with torch.no_grad():
            # An untrained mode head may pick "terminate", after which the node stops stepping the model; pin
            # "base" so every image runs a full control step.
            action_space = ActionSpaceConfig.from_yaml()
            model.action_head.heads[MODE_DIM].bias[action_space.mode_index("base")] += 50.0
        checkpoint = save_pretrained(model, Path(directory) / "policy", action_space)
        del model

        graph = InProcessGraph()
        namespace = f"/rt1_bench_{os.getpid()}"
        try:
            overrides = dict(checkpoint=str(checkpoint), device="cpu", control_trigger="image", start_enabled=True,
                             ema_alpha=1.0, image_timeout_s=60.0, image_reliability="reliable")
            node = graph.add(Rt1Node(namespace=namespace, context=graph.context,
                                     parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]))
            peer = graph.add(rclpy.create_node("rt1_bench_peer", namespace=namespace, context=graph.context))

            arrivals: dict[str, list] = defaultdict(list)
            arrived = threading.Condition()

            def record(kind: str):
                def callback(message) -> None:
                    with arrived:
                        arrivals[kind].append((time.perf_counter(), message))
                        arrived.notify_all()
                return callback

            peer.create_subscription(Twist, "cmd_vel", record("twist"), 10)
            peer.create_subscription(RT1Action, "rt1_action", record("action"), 10)
            image_publisher = peer.create_publisher(Image, "image", 10)
            instruction_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
            peer.create_publisher(String, "instruction", instruction_qos).publish(String(data=INSTRUCTION))
            if not _wait(lambda: node.controller.instruction is not None
                         and image_publisher.get_subscription_count() > 0, settings.timeout_s):
                return {"skipped": "the node did not receive the instruction / discover the camera in time"}

            frames = camera_frames(8, max(settings.image_width, settings.image_height), seed=1)
            frames = frames[:, :settings.image_height, :settings.image_width]
            end_to_end, model_ms, overhead = [], [], []
            total = settings.warmup_messages + settings.messages
            for i in range(total):
                message = Image(height=settings.image_height, width=settings.image_width, encoding="rgb8",
                                is_bigendian=0, step=settings.image_width * 3)
                message.data = frames[i % len(frames)].tobytes()
                message.header.stamp.sec = 1000 + i
                message.header.frame_id = "camera"
                with arrived:
                    twists_before = len(arrivals["twist"])
                sent = time.perf_counter()
                image_publisher.publish(message)
                with arrived:
                    ok = arrived.wait_for(lambda before=twists_before, sec=1000 + i: (
                        len(arrivals["twist"]) > before and any(a[1].header.stamp.sec == sec
                                                                for a in arrivals["action"])),
                        timeout=settings.timeout_s)
                    if not ok:
                        return {"skipped": f"no Twist for image {i} within {settings.timeout_s} s"}
                    received = arrivals["twist"][twists_before][0]
                    action = next(a[1] for a in arrivals["action"] if a[1].header.stamp.sec == 1000 + i)
                if i < settings.warmup_messages:
                    continue
                latency_ms = (received - sent) * 1000.0
                end_to_end.append(latency_ms)
                model_ms.append(action.inference_ms)
                overhead.append(latency_ms - action.inference_ms)
            return {"model_size": settings.model_size,
                    "image": f"{settings.image_width}x{settings.image_height} rgb8",
                    "transport": f"{os.environ.get('RMW_IMPLEMENTATION', 'default rmw')}, in-process peer",
                    "image_in_to_twist_out_ms": summarise_ms(end_to_end),
                    "model_inference_ms": summarise_ms(model_ms), "node_overhead_ms": summarise_ms(overhead),
                    "frames_skipped": node.frames_skipped}
        finally:
            graph.close()


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- lucidrains' robotic-transformer-pytorch -------------------------------------------------------------------
def import_lucidrains():
    """(MaxViT, RT1) of robotic-transformer-pytorch, or the reason it cannot be used here.

    Its text conditioner builds a T5 encoder from the Hugging Face hub on construction and its package imports
    open_clip at import time; neither is used when text embeddings are passed in (which is how we time it, as
    our own step excludes the sentence encoder too), so a missing open_clip is replaced by an empty module and
    T5's weights are never loaded: only its configuration (d_model 768) is registered.
    """
    import importlib.util
    import types

    if importlib.util.find_spec("robotic_transformer_pytorch") is None:
        return None, ("not installed (pip install robotic-transformer-pytorch pulls torch 2.15 and CUDA wheels; "
                      "README 'Performance' shows a --no-deps install beside this environment)")
    try:
        if importlib.util.find_spec("open_clip") is None:
            sys.modules.setdefault("open_clip", types.ModuleType("open_clip"))
        from classifier_free_guidance_pytorch import t5
        from transformers import T5Config

        t5.T5_CONFIGS.setdefault(t5.DEFAULT_T5_NAME, {"model": None, "tokenizer": None,
                                                      "config": T5Config(d_model=768)})
        from robotic_transformer_pytorch import RT1 as LucidRT1
        from robotic_transformer_pytorch import MaxViT
    except Exception as exc:  # any import-time failure of a third-party package is reported, not raised
        return None, f"installed but not importable: {type(exc).__name__}: {exc}"
    return (MaxViT, LucidRT1), ""


def bench_lucidrains(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    if not config.lucidrains.enabled:
        return {"skipped": "disabled in this configuration"}
    classes, reason = import_lucidrains()
    if classes is None:
        return {"skipped": reason}
    max_vit, lucid_rt1 = classes
    settings, size = config.lucidrains, config.lucidrains.image_size
    torch.manual_seed(0)
    # Its README's configuration.
    vit = max_vit(num_classes=1000, dim_conv_stem=64, dim=96, dim_head=32, depth=(2, 2, 5, 2), window_size=7,
                  mbconv_expansion_rate=4, mbconv_shrinkage_rate=0.25, dropout=0.1)
    theirs = lucid_rt1(vit=vit, num_actions=NUM_ACTION_DIMS, depth=6, heads=8, dim_head=64,
                       cond_drop_prob=0.2).to(device).eval()
    frames = 6
    video = torch.rand(1, 3, frames, size, size, device=device)
    text_embeds = torch.randn(1, 768, device=device)
    their_parameters = count_parameters(theirs) - count_parameters(theirs.conditioner)

    @torch.inference_mode()
    def their_step(_: int) -> None:
        theirs(video, text_embeds=text_embeds)

    with PeakMemory() as their_memory:
        their_timings = time_calls(their_step, settings.warmup_steps, settings.steps,
                                   config.max_seconds_per_measurement)
    theirs.cpu()

    # Ours at the same resolution and frames: paper architecture, image_size overridden.
    ours_config = dataclasses.replace(RT1Config.from_yaml("paper"), image_size=size)
    torch.manual_seed(0)
    ours_model = RT1(ours_config).eval()
    camera = camera_frames(settings.warmup_steps + settings.steps + 1, size)
    policy = make_policy(ours_model, InferenceOptions(), device)
    run = dataclasses.replace(config, warmup_steps=settings.warmup_steps, steps=settings.steps)
    ours_cached, _ = cached_steps(policy, camera, run)
    ours_full, _ = full_recompute_steps(policy, camera, run)
    return {"package": _package_version("robotic-transformer-pytorch"), "configuration": "README MaxViT",
            "batch": 1, "frames": frames, "image_size": size,
            "their_parameters_m_without_text_conditioner": round(their_parameters / 1e6, 2),
            "their_step": their_timings.as_dict(), "their_memory": their_memory.as_dict(),
            "ours_cached_optimised": ours_cached.as_dict(), "ours_full_recompute_optimised": ours_full.as_dict(),
            "their_step_over_our_cached_step": _ratio(their_timings.wall_ms, ours_cached.wall_ms),
            "their_step_over_our_full_recompute": _ratio(their_timings.wall_ms, ours_full.wall_ms)}


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# -- CUDA paths ------------------------------------------------------------------------------------------------
def bench_cuda(config: BenchConfig) -> dict[str, Any]:
    """Every executor × dtype on the paper model; the fastest one whose tokens agree with fp32 eager on at least
    ``min_token_agreement`` of the dimensions is the recommended node default for this GPU."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    device = torch.device("cuda")
    settings = config.cuda
    size = "paper" if "paper" in config.models else config.models[-1]
    model = untrained_model(size)
    frames = camera_frames(settings.warmup_steps + settings.steps + 1, 320)
    check = frames[:config.check_frames]
    candidates: dict[str, Any] = {}
    for executor in settings.executors:
        for dtype in settings.dtypes:
            if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
                candidates[f"{executor}/{dtype}"] = {"skipped": "bf16 not supported on this GPU"}
                continue
            options = InferenceOptions(cuda_executor=executor, cuda_dtype=dtype)
            name = f"{executor}/{dtype}"
            try:
                with PeakMemory() as memory:
                    policy = make_policy(model, options, device)
                    timings, _ = cached_steps(policy, frames, dataclasses.replace(
                        config, warmup_steps=settings.warmup_steps, steps=settings.steps))
                agreement = check_optimised_tokens(model, check, device, options)
            except Exception as exc:  # a path that fails on this GPU/driver is reported, the others still run
                candidates[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            candidates[name] = {"cached": timings.as_dict(), "tokens": agreement, "memory": memory.as_dict()}
            del policy
    correct = {name: c for name, c in candidates.items()
               if "cached" in c and c["tokens"]["token_agreement"] >= settings.min_token_agreement}
    fastest = min(correct, key=lambda n: correct[n]["cached"]["wall_ms"]["median"]) if correct else None
    return {"device": torch.cuda.get_device_name(), "model": size, "candidates": candidates,
            "fastest_correct": fastest, "dtypes_known": list(CUDA_DTYPES)}


# -- profile ---------------------------------------------------------------------------------------------------
def stage_of_blocks(model: RT1) -> list[int]:
    stages = []
    for index, stage in enumerate(model.config.backbone.stages):
        stages += [index + 1] * stage.repeats
    return stages


def profile_step(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Forward hooks time each part of a cached control step (the encoder on one frame + the transformer over the
    window), on the eager reference and on the optimised path."""
    size = config.profile.model_size
    model = untrained_model(size)
    frame = images_to_tensor(camera_frames(1, model.config.image_size)[0]).unsqueeze(0).to(device)
    window = torch.randn(1, model.config.num_frames, model.config.tokens_per_frame, model.config.embed_dim,
                         device=device)
    results: dict[str, Any] = {"model": size, "steps": config.profile.steps}
    for name, options in (("reference", REFERENCE), ("optimised", InferenceOptions())):
        path = build_path(model, options, device)
        conditioning = path.model.embed_instruction(instruction_embedding()[None].to(device)).detach()
        groups = _hook_groups(path.model)
        totals: dict[str, float] = defaultdict(float)
        handles = []
        for group, module in groups:
            handles += _attach_timer(module, group, totals)
        step_ms = []
        with torch.inference_mode():
            path.encode_frame(frame, conditioning)  # warm-up
            path.logits(window)
            totals.clear()
            for _ in range(config.profile.steps):
                started = time.perf_counter()
                path.encode_frame(frame, conditioning)
                path.logits(window)
                synchronise()
                step_ms.append((time.perf_counter() - started) * 1000.0)
        for handle in handles:
            handle.remove()
        steps = config.profile.steps
        total = float(np.sum(step_ms)) / steps
        parts = {group: ms / steps for group, ms in totals.items()}
        parts["other (normalisation, glue)"] = max(0.0, total - sum(parts.values()))
        results[name] = {"step_ms": round(total, 2),
                         "parts_ms": {k: round(v, 2) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
                         "parts_share": {k: round(v / total, 3) for k, v in parts.items()}}
        results[name]["top_operators"] = _top_operators(path, frame, conditioning, window)
    return results


def _hook_groups(model: RT1) -> list[tuple[str, nn.Module]]:
    encoder = model.image_encoder
    groups: list[tuple[str, nn.Module]] = [("stem", encoder.stem)]
    for block, film, stage in zip(encoder.blocks, encoder.films, stage_of_blocks(model)):
        groups.append((f"mbconv stage {stage}", block))
        groups.append(("film (all blocks)", film))
    groups += [("pool + token projection", encoder.pool), ("pool + token projection", encoder.token_projection),
               ("token learner", model.token_learner), ("transformer", model.transformer),
               ("action heads", model.action_head)]
    return groups


def _attach_timer(module: nn.Module, group: str, totals: dict[str, float]) -> list:
    started: list[float] = []

    def before(*_) -> None:
        synchronise()
        started.append(time.perf_counter())

    def after(*_) -> None:
        synchronise()
        totals[group] += (time.perf_counter() - started.pop()) * 1000.0

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


def _top_operators(path, frame, conditioning, window, count: int = 8) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch.inference_mode(), profile(activities=activities) as profiler:
        path.encode_frame(frame, conditioning)
        path.logits(window)
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:count]
    return [{"operator": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1000.0, 2)}
            for e in events]


# -- targets, table, entry point -------------------------------------------------------------------------------
def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets = []
    paper = results.get("latency", {}).get("paper")
    if paper:
        best = paper["optimised"]
        targets.append({"target": f"paper cached step >= {TARGET_CACHED_SPEEDUP:g}x faster than full recompute "
                                  "(same path), identical tokens",
                        "value": f"{best['speedup_cached_vs_full']}x wall, "
                                 f"{best['speedup_cached_vs_full_thread_cpu']}x thread-CPU, tokens "
                                 f"{'identical' if best['cached_tokens_equal_full'] else 'DIFFER'}",
                        "passed": bool(best["speedup_cached_vs_full"]
                                       and best["speedup_cached_vs_full"] >= TARGET_CACHED_SPEEDUP
                                       and best["cached_tokens_equal_full"])})
        median = best["cached"]["wall_ms"]["median"]
        targets.append({"target": f"paper >= {TARGET_PAPER_STEPS_PER_S:g} control steps/s on this CPU",
                        "value": f"{1000.0 / median:.2f} steps/s (median {median:.0f} ms)",
                        "passed": 1000.0 / median >= TARGET_PAPER_STEPS_PER_S})
    node = results.get("node", {})
    if "node_overhead_ms" in node:
        overhead = node["node_overhead_ms"]["median"]
        targets.append({"target": f"node overhead < {TARGET_NODE_OVERHEAD_MS:g} ms per step",
                        "value": f"{overhead:.2f} ms median, p90 {node['node_overhead_ms']['p90']:.2f} ms",
                        "passed": overhead < TARGET_NODE_OVERHEAD_MS})
    return targets


def format_table(results: dict[str, Any]) -> str:
    lines = []
    machine = results["machine"]
    lines.append(f"machine: {machine['cpu']}, {machine['logical_cpus']} CPUs, torch {machine['torch']}, "
                 f"{results['config']['num_threads']} intra-op thread(s), load average "
                 f"{_load(machine['load_average'])} at start, {_load(results['machine_end']['load_average'])} at end")
    lines.append("")
    lines.append(f"{'model':6} {'path':10} {'mode':15} {'median':>9} {'p90':>9} {'p99':>9} {'cpu med':>9} "
                 f"{'n':>4}  notes")
    for size, entry in results.get("latency", {}).items():
        for name in ("reference", "optimised"):
            run = entry[name]
            for mode in ("cached", "full_recompute"):
                wall = run[mode]["wall_ms"]
                cpu = run[mode].get("thread_cpu_ms", {}).get("median")
                note = ""
                if mode == "cached":
                    note = (f"{run['speedup_cached_vs_full']}x vs full; tokens "
                            f"{'==' if run['cached_tokens_equal_full'] else '!='} full; "
                            f"peak RSS {run['memory']['peak_rss_mb']:.0f} MB")
                lines.append(f"{size:6} {name:10} {mode:15} {wall['median']:9.1f} {wall['p90']:9.1f} "
                             f"{wall['p99']:9.1f} {_fmt(cpu):>9} {wall['n']:4}  {note}")
        check = entry["optimised_vs_reference_tokens"]
        lines.append(f"{size:6} optimised vs reference tokens: agreement {check['token_agreement']:.3f} on "
                     f"{check['frames']} frames, max |logit diff| {check['max_abs_logit_difference']:.2e}")
    sweep = results.get("thread_sweep")
    if sweep:
        lines.append("")
        cells = [f"{threads} thread(s): {run['wall_ms']['median']:.1f} ms (load {run['load_average'][0]:.1f})"
                 for threads, run in sweep["by_threads"].items()]
        lines.append(f"thread sweep, {sweep['model']} {sweep['path']}: " + "; ".join(cells))
    if results.get("throughput"):
        lines.append("")
        for size, run in results["throughput"].items():
            lines.append(f"training {size}: batch {run['batch']}x{run['frames']} frames @ {run['image_size']} px, "
                         f"forward+backward {run['step']['wall_ms']['median']:.0f} ms -> "
                         f"{run['samples_per_s']:.2f} samples/s, peak RSS {run['memory']['peak_rss_mb']:.0f} MB")
    node = results.get("node")
    if node:
        lines.append("")
        if "skipped" in node:
            lines.append(f"node path: skipped ({node['skipped']})")
        else:
            lines.append(f"node path ({node['model_size']}, {node['image']}, {node['transport']}): image->Twist "
                         f"median {node['image_in_to_twist_out_ms']['median']:.1f} ms, model "
                         f"{node['model_inference_ms']['median']:.1f} ms, overhead median "
                         f"{node['node_overhead_ms']['median']:.2f} / p90 {node['node_overhead_ms']['p90']:.2f} ms")
    lucid = results.get("lucidrains")
    if lucid:
        if "skipped" in lucid:
            lines.append(f"lucidrains robotic-transformer-pytorch: {lucid['skipped']}")
        else:
            lines.append(f"lucidrains robotic-transformer-pytorch {lucid['package']} (MaxViT, {lucid['frames']} "
                         f"frames @ {lucid['image_size']} px): step {lucid['their_step']['wall_ms']['median']:.0f} ms"
                         f" vs ours cached {lucid['ours_cached_optimised']['wall_ms']['median']:.0f} ms "
                         f"({lucid['their_step_over_our_cached_step']}x) / full "
                         f"{lucid['ours_full_recompute_optimised']['wall_ms']['median']:.0f} ms "
                         f"({lucid['their_step_over_our_full_recompute']}x)")
    cuda = results.get("cuda")
    if cuda:
        if "skipped" in cuda:
            lines.append(f"cuda paths: skipped ({cuda['skipped']})")
        else:
            lines.append(f"cuda ({cuda['device']}): fastest correct path {cuda['fastest_correct']}")
            for name, run in cuda["candidates"].items():
                if "cached" in run:
                    lines.append(f"  {name:22} {run['cached']['wall_ms']['median']:8.2f} ms, token agreement "
                                 f"{run['tokens']['token_agreement']:.3f}")
                else:
                    lines.append(f"  {name:22} {run.get('error') or run.get('skipped')}")
    profile = results.get("profile")
    if profile:
        for name in ("reference", "optimised"):
            run = profile[name]
            lines.append("")
            lines.append(f"profile {profile['model']} cached step, {name}: {run['step_ms']:.1f} ms")
            for part, ms in run["parts_ms"].items():
                lines.append(f"  {part:30} {ms:8.2f} ms  {100 * run['parts_share'][part]:5.1f} %")
            top = ", ".join(f"{op['operator']} {op['self_cpu_ms']:.1f}" for op in run["top_operators"][:5])
            lines.append(f"  top operators (self CPU ms): {top}")
    lines.append("")
    for target in results.get("targets", []):
        lines.append(f"[{'PASS' if target['passed'] else 'MISS'}] {target['target']}: {target['value']}")
    return "\n".join(lines)


def _load(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_bench(config: BenchConfig, sections: tuple[str, ...] = SECTIONS, smoke: bool = False) -> dict[str, Any]:
    device = torch.device("cpu")
    previous_threads = torch.get_num_threads()
    results: dict[str, Any] = {"smoke": smoke, "config": to_mapping(config), "machine": machine_state()}
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        if "latency" in sections:
            results["latency"] = bench_latency(config, device)
            results["thread_sweep"] = bench_thread_sweep(config, device)
        if "throughput" in sections:
            results["throughput"] = bench_throughput(config, device)
        if "node" in sections:
            results["node"] = bench_node(config)
        if "lucidrains" in sections:
            try:
                results["lucidrains"] = bench_lucidrains(config, device)
            except Exception as exc:  # a third-party model failing must not lose the rest of the run
                results["lucidrains"] = {"skipped": f"failed to run: {type(exc).__name__}: {exc}"}
        if "cuda" in sections:
            results["cuda"] = bench_cuda(config)
        if "profile" in sections:
            results["profile"] = profile_step(config, device)
    finally:
        torch.set_num_threads(previous_threads)
    results["machine_end"] = {"load_average": list(os.getloadavg())}
    results["targets"] = evaluate_targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long CI run (tiny model, few steps)")
    parser.add_argument("--config", default=None, help="bench YAML (default: config/bench.yaml)")
    parser.add_argument("--output", default="bench.json", help="where the JSON results go")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    config = BenchConfig.from_yaml("smoke" if args.smoke else "default", args.config)
    results = run_bench(config, sections, smoke=args.smoke)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str))
    print(format_table(results))
    print(f"\nresults: {output.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
