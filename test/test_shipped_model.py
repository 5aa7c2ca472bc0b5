"""The shipped simulator policy (models/rt1_sim) is part of the product: it loads, it is small, and in closed loop
through the real rt1_node and sim_node over ROS 2 it does every family's task under every evaluation condition (a
behaviour check on dev seeds, as many per family as its recorded report rate needs for every cell to show a success
with 99 % probability; not the headline number: README and docs/results.md have the report-seed table)."""
from __future__ import annotations

import math

import pytest

from rt1_ros.closed_loop.evaluation import trained_families
from rt1_ros.runtime.policy_loading import SHIPPED_MODEL, shipped_model_path
from rt1_ros.sim.config import SimConfig


def shipped_families() -> tuple[str, ...]:
    """Every family the shipped checkpoint was trained on is a task it must do (config/sim.yaml's default families
    when the checkpoint is missing, which the first test reports)."""
    path = shipped_model_path()
    return trained_families(str(path)) if path is not None else SimConfig.from_yaml().tasks.default_families


FAMILIES = shipped_families()
CONDITIONS = SimConfig.from_yaml().condition_names
# Dev seeds (config/sim.yaml seeds.dev) tried per family until one succeeds: enough that a policy succeeding as often
# as its recorded report run measured (rate p) misses in any of the len(CONDITIONS) × len(FAMILIES) cells with
# probability under 1 %: each cell's n seeds fail together with probability (1 - p)^n < 1 % / cells (a union bound).
MISS_PROBABILITY = 0.01 / (len(CONDITIONS) * len(FAMILIES))
SEEDS_MIN, SEEDS_MAX = 8, 40
MAX_BYTES = 20 * 1024 * 1024


def test_shipped_model_is_committed_small_and_records_its_recipe():
    from rt1_ros.model.checkpoint import read_checkpoint_config

    path = shipped_model_path()
    assert path is not None, f"{SHIPPED_MODEL} is missing: `make model` rebuilds it"
    # onnx/: the exports rt1-export and the ONNX backends cache beside a checkpoint (git-ignored, not shipped)
    assert sorted(p.name for p in path.iterdir() if p.name != "onnx") == ["config.yaml", "model.safetensors"]
    assert (path / "model.safetensors").stat().st_size <= MAX_BYTES
    model_config, _, extra = read_checkpoint_config(path)
    assert model_config.image_size == 128
    dataset = extra["dataset"]
    # The demo's families at least, and only families the simulator knows (each is then checked over ROS below).
    sim_tasks = SimConfig.from_yaml().tasks
    assert set(sim_tasks.default_families) <= set(dataset["families"]) <= set(sim_tasks.family_names)
    assert len(dataset["held_out_targets"]) == len(dataset["families"])  # one unseen instruction per family


def seeds_to_try(report_rate: float) -> int:
    """Seeds to try for a family whose report run measured ``report_rate``; the ceiling for a rate near 0."""
    if report_rate <= 0.0:
        return SEEDS_MAX
    if report_rate >= 1.0:
        return SEEDS_MIN
    return max(SEEDS_MIN, min(SEEDS_MAX, math.ceil(math.log(MISS_PROBABILITY) / math.log(1.0 - report_rate))))


def test_seeds_tried_grow_as_the_measured_rate_falls():
    assert seeds_to_try(0.9) == SEEDS_MIN and seeds_to_try(0.38) < seeds_to_try(0.18) <= SEEDS_MAX
    assert seeds_to_try(0.0) == SEEDS_MAX and (1 - 0.18) ** seeds_to_try(0.18) < MISS_PROBABILITY


def report_rates(path) -> dict[str, float]:
    """condition/family -> success rate of the latest report run the checkpoint records (nominal: none)."""
    from rt1_ros.model.checkpoint import read_checkpoint_config

    runs = read_checkpoint_config(path)[2].get("report_runs") or []
    rows = runs[-1]["rows"] if runs else {}
    return {key: row["successes"] / row["episodes"] for key, row in rows.items() if row["episodes"]}


@pytest.mark.ros
@pytest.mark.parametrize("condition", CONDITIONS)
def test_shipped_policy_over_ros_succeeds_at_every_family_in_every_condition(condition):
    """At least one success per family in its first dev seeds under ``condition``, through the real rt1_node and
    sim_node. Under ``unseen_pairs`` each family asks only for its held-out pair."""
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig

    path = shipped_model_path()
    assert path is not None, f"{SHIPPED_MODEL} is missing"
    first_seed = SimConfig.from_yaml().seeds.dev.first
    rates = report_rates(path)
    # A condition the report run left out (nominal) is tried as the family's seen rate says.
    seeds = {family: seeds_to_try(rates.get(f"{condition}/{family}", rates.get(f"seen/{family}", 0.0)))
             for family in FAMILIES}
    tried: dict[str, list[tuple[int, bool, int]]] = {}
    config = ClosedLoopConfig(checkpoint=str(path), condition=condition)
    with ClosedLoop(config, FAMILIES[0], idle_seed=first_seed + SEEDS_MAX) as loop:
        for family in FAMILIES:
            for seed in range(first_seed, first_seed + seeds[family]):
                episode = loop.run_episode(family, seed)
                assert (episode.family, episode.seed) == (family, seed) and episode.steps >= 1
                assert len({a.stamp_ns for a in episode.actions}) >= episode.steps  # an answer per sim step
                tried.setdefault(family, []).append((seed, episode.success, episode.steps))
                if episode.success:
                    break
    failed = {family: runs for family, runs in tried.items() if not any(success for _, success, _ in runs)}
    assert not failed, f"{condition}: no success in {seeds} seeds (seed, success, steps): {failed}"
