"""The shipped simulator policy (models/rt1_sim) is part of the product: it loads, it is small, and in closed loop
through the real rt1_node and sim_node over ROS 2 it does what README "The shipped policy" says it does (a behaviour
check, not the headline number: README has the 50-seed table)."""
from __future__ import annotations

import pytest

from rt1_ros.runtime.policy_loading import SHIPPED_MODEL, shipped_model_path

FAMILIES = ("pick", "push", "move_near")
SEEDS_TRIED = 8  # evaluation seeds (100000 on, never training seeds) tried until one succeeds
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
    assert set(dataset["families"]) == set(FAMILIES)
    assert len(dataset["held_out_targets"]) == len(FAMILIES)  # one unseen instruction per family


@pytest.mark.ros
def test_shipped_policy_over_ros_succeeds_at_every_family():
    """At least one success per family in its first evaluation seeds, through the real rt1_node and sim_node (README
    "The shipped policy" has the 50-seed rates: pick 56 %, push 42 %, move_near 94 %; on this machine the first
    success came at seed 100000, 100003 and 100000)."""
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig

    path = shipped_model_path()
    assert path is not None, f"{SHIPPED_MODEL} is missing"
    tried: dict[str, list[tuple[int, bool, int]]] = {}
    with ClosedLoop(ClosedLoopConfig(checkpoint=str(path)), FAMILIES[0], idle_seed=99) as loop:
        for family in FAMILIES:
            for seed in range(100_000, 100_000 + SEEDS_TRIED):
                episode = loop.run_episode(family, seed)
                assert (episode.family, episode.seed) == (family, seed) and episode.steps >= 1
                assert len({a.stamp_ns for a in episode.actions}) >= episode.steps  # an answer per sim step
                tried.setdefault(family, []).append((seed, episode.success, episode.steps))
                if episode.success:
                    break
    failed = {family: runs for family, runs in tried.items() if not any(success for _, success, _ in runs)}
    assert not failed, f"no success in {SEEDS_TRIED} seeds (seed, success, steps): {failed}"
