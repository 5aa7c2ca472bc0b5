"""rt1_ros.bench.backends: torch vs ONNX Runtime vs OpenVINO side by side on the shipped trained model, and how the
recommended backend is chosen. No timing is asserted: only structure, token checks and the choice's logic."""
from __future__ import annotations

import json

from rt1_ros.bench.backends import Agreement, Candidate, ModelComparison, bench_backends, run_interleaved
from rt1_ros.bench.config import BackendsBenchConfig, BenchConfig
from rt1_ros.bench.targets import evaluate_targets
from rt1_ros.inference import options as inference_options


def test_section_runs_every_backend_on_the_trained_model_with_identical_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("RT1_ONNX_CACHE", str(tmp_path))
    config = BenchConfig(backends=BackendsBenchConfig(models=("trained",), threads=(1,), warmup_steps=1, steps=3,
                                                      rounds=2, check_frames=4))
    result = bench_backends(config)
    trained = result.models["trained"]
    assert [c.name for c in trained.candidates] == ["torch/1t", "onnxruntime/1t", "openvino/1t"]
    for candidate in trained.candidates:
        assert candidate.error is None and len(candidate.wall_ms) == len(candidate.cpu_ms) == 3
        assert candidate.agreement.identical and not candidate.agreement.vacuous
        assert candidate.agreement.input_dependence > 1e-1
    assert result.recommended in ("torch", "onnxruntime", "openvino")
    document = json.loads(json.dumps(result.as_dict()))
    assert document["models"]["trained"]["candidates"]["torch/1t"]["speedup_vs_torch"] == 1.0
    lines = "\n".join(result.format())
    assert result.cpu in lines and "recommended CPU backend" in lines


def identical(dependence: float = 1.0) -> Agreement:
    return Agreement(frames=4, token_agreement=1.0, identical=True, max_abs_logit_difference=1e-6,
                     input_dependence=dependence)


def test_the_fastest_backend_counts_only_with_identical_non_vacuous_tokens():
    differing = Agreement(frames=4, token_agreement=0.9, identical=False, max_abs_logit_difference=0.3,
                          input_dependence=1.0)
    comparison = ModelComparison(model="trained", parameters=1, image_size=128, frames="frames", candidates=[
        Candidate("torch", 1, wall_ms=[30.0], cpu_ms=[30.0], agreement=identical()),
        Candidate("openvino-bf16", 1, wall_ms=[5.0], cpu_ms=[5.0], agreement=differing),
        Candidate("onnxruntime", 1, wall_ms=[12.0], cpu_ms=[12.0], agreement=identical()),
        Candidate("openvino", 1, wall_ms=[15.0], cpu_ms=[15.0], agreement=identical()),
        Candidate("onnxruntime", 2, error="failed")])
    assert comparison.fastest_identical.name == "onnxruntime/1t"
    assert comparison.speedup_vs_torch(comparison.candidates[2]) == 2.5
    vacuous = ModelComparison(model="paper", parameters=1, image_size=300, frames="frames", candidates=[
        Candidate("openvino", 1, wall_ms=[15.0], cpu_ms=[15.0], agreement=identical(dependence=1e-7))])
    assert vacuous.fastest_identical is None


def test_each_comparison_names_what_auto_runs_for_its_frame_size(monkeypatch):
    monkeypatch.setattr(inference_options.platform, "machine", lambda: "x86_64")
    small = ModelComparison(model="trained", parameters=1, image_size=128, frames="frames", candidates=[])
    large = ModelComparison(model="paper", parameters=1, image_size=300, frames="frames", candidates=[])
    assert (small.auto_backend, large.auto_backend) == ("onnxruntime", "openvino")
    assert small.as_dict()["auto_backend"] == "onnxruntime" and "auto runs openvino" in large.format()[-1]


def test_interleaved_rounds_give_every_candidate_its_steps_in_rotated_order():
    order: list[str] = []
    candidates = [Candidate("a", 1), Candidate("b", 1), Candidate("c", 1)]
    steps = {id(c): (lambda name=c.backend: order.append(name)) for c in candidates}
    run_interleaved(candidates, steps, warmup=1, total=7, rounds=3)
    assert order[:3] == ["a", "b", "c"]  # warm-up
    assert [len(c.wall_ms) for c in candidates] == [7, 7, 7]
    timed = order[3:]
    assert timed[0] == "a" and timed[3 * 3] == "b" and timed[3 * 3 + 3 * 2] == "c"  # rounds of 3, 2, 2 steps


def test_backend_targets_are_judged_from_the_results():
    def run(backend, threads, median, speedup, same=True):  # one candidate's JSON, as the section writes it
        return {"backend": backend, "threads": threads, "wall_ms": {"median": median}, "speedup_vs_torch": speedup,
                "tokens": {"identical": same, "vacuous": False}}

    backends = {"recommended_cpu_backend": "onnxruntime", "models": {
        "trained": {"candidates": {"torch/1t": run("torch", 1, 20, 1.0), "openvino/1t": run("openvino", 1, 8, 2.5)}},
        "paper": {"auto_backend": "openvino",
                  "candidates": {"torch/1t": run("torch", 1, 130, 1.0), "torch/2t": run("torch", 2, 900, 1.0),
                                 "openvino/1t": run("openvino", 1, 70, 1.86),
                                 "openvino/2t": run("openvino", 2, 60, 15.0)}}}}
    speedup, rate = evaluate_targets({"backends": backends})
    # best against best: 130 ms (torch, 1 thread) / 60 ms (openvino, 2 threads), not 15x at equal threads
    assert speedup.passed and speedup.value.startswith("2.17x (130.0 ms torch/1t vs 60.0 ms openvino/2t)")
    assert not rate.passed and rate.value == "16.7 steps/s (median 60.0 ms)"
    backends["models"]["trained"]["candidates"]["openvino/1t"]["tokens"]["identical"] = False
    assert not evaluate_targets({"backends": backends})[0].passed
    backends["models"]["trained"]["candidates"]["openvino/1t"]["tokens"]["identical"] = True
    backends["models"]["paper"]["candidates"]["openvino/2t"]["tokens"]["vacuous"] = True
    assert not evaluate_targets({"backends": backends})[0].passed
