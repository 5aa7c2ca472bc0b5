"""rt1-bench end to end: the smoke run's JSON is complete and sane (`python -m rt1_ros.bench`, rt1_ros.bench.cli).

No timing is asserted anywhere: this machine's CPU is shared, so only structure and correctness are checked.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.ros
def test_smoke_run_writes_sane_json(tmp_path):
    pytest.importorskip("rclpy")
    output = tmp_path / "bench.json"
    completed = subprocess.run([sys.executable, "-m", "rt1_ros.bench", "--smoke", "--output", str(output)],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=280)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "node path" in completed.stdout
    assert "[PASS]" in completed.stdout or "[MISS]" in completed.stdout
    results = json.loads(output.read_text())

    assert results["smoke"] is True
    assert results["machine"]["logical_cpus"] >= 1 and len(results["machine"]["load_average"]) == 3

    tiny = results["latency"]["tiny"]
    for name in ("reference", "optimised"):
        run = tiny[name]
        for mode in ("cached", "full_recompute"):
            wall = run[mode]["wall_ms"]
            assert wall["n"] >= 1 and 0 < wall["min"] <= wall["median"] <= wall["p90"] <= wall["p99"]
        assert run["cached_tokens_equal_full"] is True and run["steps_compared"] >= 1
        assert run["speedup_cached_vs_full"] > 0
        assert run["memory"]["peak_rss_mb"] > 0
    assert tiny["optimised_vs_reference_tokens"]["identical"] is True

    for run in results["thread_sweep"]["by_threads"].values():
        assert run["wall_ms"]["median"] > 0

    training = results["throughput"]["tiny"]
    assert training["samples_per_s"] > 0 and training["memory"]["peak_rss_mb"] > 0

    node = results["node"]
    assert "skipped" not in node, node.get("skipped")
    assert node["image_in_to_twist_out_ms"]["n"] >= 1
    assert node["model_inference_ms"]["median"] > 0
    assert node["image_in_to_twist_out_ms"]["median"] >= node["model_inference_ms"]["median"]

    # rt1_node's process with a camera process (smoke: small frames, a 3 s window): its CPU share was measured
    # and it stepped the controller meanwhile.
    cpu = results["node_cpu"]["backends"]["onnxruntime"]
    assert "skipped" not in cpu, cpu.get("skipped")
    assert cpu["node_cpu_fraction_of_a_core"] > 0 and cpu["control_steps_per_s"] > 0
    assert cpu["inference_x_rate_fraction_of_a_core"] > 0  # wall time x rate: above the CPU share under load

    assert "skipped" in results["lucidrains"]
    assert "cuda" in results and ("skipped" in results["cuda"]) == (not torch.cuda.is_available())

    profile = results["profile"]
    for name in ("reference", "optimised"):
        parts = profile[name]["parts_ms"]
        assert {"stem", "transformer", "token learner", "film (all blocks)", "action heads"} <= parts.keys()
        assert any(part.startswith("mbconv stage") for part in parts)
        assert all(ms >= 0 for ms in parts.values()) and profile[name]["step_ms"] > 0
        assert profile[name]["top_operators"]

    backends = results["backends"]  # smoke: the trained model, one thread
    for run in backends["models"]["trained"]["candidates"].values():
        assert run["wall_ms"]["median"] > 0 and run["tokens"]["identical"] and not run["tokens"]["vacuous"]
    assert backends["recommended_cpu_backend"] in ("torch", "onnxruntime", "openvino")

    assert {t["target"].split(" ")[0] for t in results["targets"]} >= {"node"}
    assert any(t["target"].startswith("node process on onnxruntime") for t in results["targets"])
