"""The backends section: the cached control step on torch (the node's path before ONNX: BatchNorm folded,
channels-last), ONNX Runtime and OpenVINO side by side in one run, per model and thread count, with each backend's
tokens against the eager fp32 reference and the reference's input dependence.

A step is what `RT1Policy.select_action` does with its inference path: resize the camera frame, encode it, push its
tokens into the history, run the transformer over the window and decode the tokens. Steps are timed in interleaved
rounds (each round runs every candidate, in a rotated order), so load from other jobs on a shared CPU drifts onto
every backend alike; the wall-clock median and the process CPU time per step are reported.

The backend `inference_backend: auto` runs on x86 (`rt1_ros.inference.options.auto_cpu_backend`, by frame size) should
be the fastest one here whose tokens are identical to the reference's; per model, `fastest_identical` names the
run's fastest and `auto_backend` what auto runs, side by side.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rt1_ros.configuration.action_layout import MODE_CLASSES
from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.fixtures import camera_frames, instruction_embedding, simulator_frames, untrained_model
from rt1_ros.bench.machine import machine_state
from rt1_ros.bench.measurement import summarise_ms
from rt1_ros.model.action_tokenizer import tokens_from_logits
from rt1_ros.model.rt1 import RT1, count_parameters
from rt1_ros.inference.frame_history import FrameTokenHistory
from rt1_ros.inference.image_decoding import resize_for_model
from rt1_ros.inference.options import InferenceOptions
from rt1_ros.inference.parity import input_dependence, reference_and_candidate_tokens, tokens_agree
from rt1_ros.inference.paths import build_path, window_logits

TRAINED = "trained"


def frames_as_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(...,H,W,3) uint8 -> (...,3,H,W) float32 in [0,1], as the policy feeds RT-1."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).movedim(-1, -3).float().div_(255.0)


@dataclass
class Agreement:
    """A candidate's tokens vs the eager fp32 reference on the check frames."""

    frames: int
    token_agreement: float
    identical: bool
    max_abs_logit_difference: float
    input_dependence: float

    @property
    def vacuous(self) -> bool:
        """The reference barely reacts to its input, so agreeing with it proves nothing (as in TokenCheck)."""
        return self.input_dependence <= max(1e-3, 100.0 * self.max_abs_logit_difference)

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "token_agreement": self.token_agreement, "identical": self.identical,
                "max_abs_logit_difference": self.max_abs_logit_difference,
                "input_dependence": self.input_dependence, "vacuous": self.vacuous}

    def summary(self) -> str:
        verdict = "identical" if self.identical else f"{100 * self.token_agreement:.1f}% agree"
        return (f"{verdict}, max |dlogit| {self.max_abs_logit_difference:.1e}"
                + (" VACUOUS" if self.vacuous else ""))


@dataclass
class Candidate:
    """One backend at one thread count: its step timings (or why it did not run) and its agreement."""

    backend: str
    threads: int
    description: str = ""
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    agreement: Agreement | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.threads}t"

    @property
    def median_ms(self) -> float | None:
        return float(np.median(self.wall_ms)) if self.wall_ms else None

    def as_dict(self) -> dict[str, Any]:
        if self.error:
            return {"backend": self.backend, "threads": self.threads, "error": self.error}
        return {"backend": self.backend, "threads": self.threads, "description": self.description,
                "wall_ms": summarise_ms(self.wall_ms), "process_cpu_ms": summarise_ms(self.cpu_ms),
                "tokens": self.agreement.as_dict() if self.agreement else None}


@dataclass
class ModelComparison:
    model: str
    parameters: int
    image_size: int
    frames: str  # what the token check ran on
    candidates: list[Candidate]

    @property
    def auto_backend(self) -> str:
        """What `inference_backend: auto` runs for this model on this machine's CPU."""
        return InferenceOptions().backend_on(torch.device("cpu"), self.image_size)

    def speedup_vs_torch(self, candidate: Candidate) -> float | None:
        """torch's median / this candidate's, at the same thread count."""
        torch_run = next((c for c in self.candidates if c.backend == "torch" and c.threads == candidate.threads
                          and c.median_ms), None)
        if torch_run is None or not candidate.median_ms:
            return None
        return round(torch_run.median_ms / candidate.median_ms, 2)

    @property
    def fastest_identical(self) -> Candidate | None:
        """The fastest candidate whose tokens equal the reference's (non-vacuously)."""
        correct = [c for c in self.candidates if c.median_ms and c.agreement and c.agreement.identical
                   and not c.agreement.vacuous]
        return min(correct, key=lambda c: c.median_ms) if correct else None

    def as_dict(self) -> dict[str, Any]:
        fastest = self.fastest_identical
        return {"parameters": self.parameters, "image_size": self.image_size, "frames": self.frames,
                "candidates": {c.name: {**c.as_dict(), "speedup_vs_torch": self.speedup_vs_torch(c)}
                               for c in self.candidates},
                "fastest_identical": fastest.name if fastest else None, "auto_backend": self.auto_backend}

    def format(self) -> list[str]:
        lines = [f"  {self.model} ({self.parameters / 1e6:.1f} M parameters; tokens on {self.frames})",
                 f"    {'backend':22} {'median':>8} {'p90':>8} {'cpu med':>8} {'vs torch':>8}  tokens vs eager fp32"]
        for c in self.candidates:
            if c.error:
                lines.append(f"    {c.name:22} {c.error}")
                continue
            wall, cpu = summarise_ms(c.wall_ms), summarise_ms(c.cpu_ms)
            speedup = self.speedup_vs_torch(c)
            lines.append(f"    {c.name:22} {wall['median']:8.1f} {wall['p90']:8.1f} {cpu['median']:8.1f} "
                         f"{(f'{speedup:.2f}x' if speedup else '-'):>8}  "
                         f"{c.agreement.summary() if c.agreement else '-'}")
        fastest = self.fastest_identical
        lines.append(f"    fastest with identical tokens: {fastest.name if fastest else 'none (or vacuous)'}; "
                     f"inference_backend auto runs {self.auto_backend}")
        return lines


@dataclass
class BackendsResult:
    cpu: str
    logical_cpus: int | None
    steps: int
    rounds: int
    models: dict[str, ModelComparison]

    @property
    def recommended(self) -> str | None:
        """The backend for `auto` on this CPU: the fastest with identical tokens on the trained model."""
        comparison = self.models.get(TRAINED)
        fastest = comparison.fastest_identical if comparison else None
        return fastest.backend if fastest else None

    def as_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "logical_cpus": self.logical_cpus, "steps": self.steps, "rounds": self.rounds,
                "models": {name: m.as_dict() for name, m in self.models.items()},
                "recommended_cpu_backend": self.recommended}

    def format(self) -> list[str]:
        lines = ["", f"backends: cached control step (ms), {self.steps} steps per candidate in {self.rounds} "
                     f"interleaved rounds, on {self.cpu} ({self.logical_cpus} CPUs)"]
        for comparison in self.models.values():
            lines += comparison.format()
        lines.append(f"  recommended CPU backend (fastest, identical tokens on the trained model): {self.recommended}")
        return lines


def load_model(name: str) -> tuple[RT1, np.ndarray, str]:
    """The model, the frames its tokens are checked on, and what they are."""
    if name == TRAINED:
        from rt1_ros.model.checkpoint import from_pretrained
        from rt1_ros.runtime.policy_loading import shipped_model_path

        model, _, _ = from_pretrained(shipped_model_path())
        return model.eval(), simulator_frames(16), "simulator pick episode frames"
    model = untrained_model(name)
    return model, camera_frames(16, model.config.image_size), "synthetic camera frames (untrained model)"


class TimedStep:
    """One candidate's cached control step, with its own frame history, as the policy runs it."""

    def __init__(self, path, conditioning: torch.Tensor, frames: np.ndarray) -> None:
        self.path = path
        self.conditioning = conditioning
        self.frames = frames
        self.frame_size = path.model.config.frame_size
        self.history = FrameTokenHistory.for_model(path.model.config)
        self.index = 0

    @torch.inference_mode()
    def __call__(self) -> torch.Tensor:
        rgb = self.frames[self.index % len(self.frames)]
        self.index += 1
        frame = frames_as_tensor(resize_for_model(rgb, self.frame_size)).unsqueeze(0)
        self.history.push(self.path.encode_frame(frame, self.conditioning)[0])
        logits = window_logits(self.path, self.history.window())
        return tokens_from_logits(logits.float(), len(MODE_CLASSES))[0]


def compare_model(name: str, config: BenchConfig) -> ModelComparison:
    settings = config.backends
    model, frames, frames_label = load_model(name)
    size = model.config.image_size
    check = frames_as_tensor(np.stack([resize_for_model(f, model.config.frame_size)
                                       for f in frames[:settings.check_frames]]))
    with torch.inference_mode():
        conditioning = model.embed_instruction(instruction_embedding()[None])
    dependence = input_dependence(model, check, conditioning)
    requests = [(backend, threads, "float32") for threads in settings.threads for backend in settings.backends]
    if settings.openvino_bf16 and "openvino" in settings.backends:
        requests += [("openvino", threads, "bfloat16") for threads in settings.threads]
    candidates: list[Candidate] = []
    steps: dict[int, TimedStep] = {}
    for backend, threads, dtype in requests:
        candidate = Candidate(backend=backend + ("-bf16" if dtype == "bfloat16" else ""), threads=threads)
        candidates.append(candidate)
        options = InferenceOptions(backend=backend, num_threads=threads, openvino_dtype=dtype, export_cache=True)
        try:
            path = build_path(model, options, torch.device("cpu"))
        except Exception as exc:  # one backend failing must not lose the others' numbers
            candidate.error = f"failed: {type(exc).__name__}: {exc}"
            continue
        if path.options.backend != backend:
            candidate.error = f"unavailable (fell back to {path.options.backend}; see the warning above)"
            continue
        describe = getattr(path, "describe", None)
        candidate.description = describe() if describe else options.describe(torch.device("cpu"))
        torch.set_num_threads(threads)
        reference, tokens, worst = reference_and_candidate_tokens(model, path, check, conditioning)
        candidate.agreement = Agreement(frames=len(check), token_agreement=tokens_agree(reference, tokens),
                                        identical=bool(torch.equal(reference, tokens)),
                                        max_abs_logit_difference=worst, input_dependence=dependence)
        steps[id(candidate)] = TimedStep(path, conditioning, frames)
    run_interleaved([c for c in candidates if id(c) in steps], steps, settings.warmup_steps, settings.steps,
                    settings.rounds)
    return ModelComparison(model=name, parameters=count_parameters(model), image_size=size, frames=frames_label,
                           candidates=candidates)


def run_interleaved(candidates: list[Candidate], steps: dict[int, TimedStep], warmup: int, total: int,
                    rounds: int) -> None:
    """Warm every candidate up, then time ``total`` steps each in ``rounds`` rounds, rotating who goes first."""
    for candidate in candidates:
        torch.set_num_threads(candidate.threads)
        for _ in range(warmup):
            steps[id(candidate)]()
    per_round = [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]
    for round_index, count in enumerate(per_round):
        shift = round_index % max(1, len(candidates))
        for candidate in candidates[shift:] + candidates[:shift]:
            torch.set_num_threads(candidate.threads)
            step = steps[id(candidate)]
            for _ in range(count):
                cpu_started, started = time.process_time(), time.perf_counter()
                step()
                candidate.wall_ms.append((time.perf_counter() - started) * 1000.0)
                candidate.cpu_ms.append((time.process_time() - cpu_started) * 1000.0)


def bench_backends(config: BenchConfig) -> BackendsResult:
    previous_threads = torch.get_num_threads()
    machine = machine_state()
    try:
        models = {name: compare_model(name, config) for name in config.backends.models}
    finally:
        torch.set_num_threads(previous_threads)
    return BackendsResult(cpu=machine.cpu, logical_cpus=machine.logical_cpus, steps=config.backends.steps,
                          rounds=config.backends.rounds, models=models)
