"""The whole loop over real topics: sim_node (lockstep) ⇄ rt1_node, a few steps, and the robot moves as commanded.

The loop is `rt1_ros.closed_loop.loop.ClosedLoop`, the one the demo and the evaluation build. The policies are tiny RT-1
checkpoints whose heads are biased to one action, so the direction of motion is known.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from ros_harness import biased_checkpoint  # noqa: E402

from rt1_ros.msg import RT1Action  # noqa: E402

BIN_MAX, BIN_MIN = 255, 0
STEPS = 4
SEED = 3


def run_lockstep_episode(checkpoint, family: str):
    """One STEPS-step episode of ``family`` through `ClosedLoop`: ((odometry, end effector) at its start, the same at
    its end, the policy's actions)."""
    from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    config = ClosedLoopConfig(checkpoint=str(checkpoint), max_episode_steps=STEPS, episode_timeout_s=120.0)
    with ClosedLoop(config, family, idle_seed=99) as loop:
        # An episode starts from the state its (family, seed) lays out, whatever ran before: read it off a twin.
        twin = MobileManipulatorSim(loop.sim_node.sim_config)
        try:
            twin.reset(family, SEED)
            start = (twin.odometry(), twin.end_effector_position().copy())
        finally:
            twin.close()
        episode = loop.run_episode(family, SEED)  # returns once the sim reports this episode done
        sim = loop.sim_node
        with sim._cond:  # the lockstep sim is paused at the episode's end
            end = (sim.sim.odometry(), sim.sim.end_effector_position().copy())
    assert len(episode.actions) >= STEPS, f"only {len(episode.actions)} policy steps arrived"
    assert episode.steps == STEPS
    return start, end, episode.actions


def test_base_drives_forward_in_its_own_frame(tmp_path):
    checkpoint = biased_checkpoint(tmp_path / "forward", mode=1, bins={7: BIN_MAX})
    (odom0, _), (odom1, _), actions = run_lockstep_episode(checkpoint, "move_near")
    heading = np.array([np.cos(odom0.yaw), np.sin(odom0.yaw)])
    travelled = np.array([odom1.x - odom0.x, odom1.y - odom0.y])
    assert travelled @ heading > 0.3, f"base moved {travelled} for a forward command"
    assert abs(odom1.yaw - odom0.yaw) < 0.1
    assert all(a.mode == RT1Action.MODE_BASE for a in actions[:STEPS])


def test_end_effector_rises_for_an_upward_arm_delta(tmp_path):
    checkpoint = biased_checkpoint(tmp_path / "up", mode=0, bins={2: BIN_MAX, 6: BIN_MIN})
    (odom0, ee0), (odom1, ee1), actions = run_lockstep_episode(checkpoint, "pick")
    assert ee1[2] - ee0[2] > 0.05, f"end effector z went {ee0[2]:.3f} -> {ee1[2]:.3f}"
    assert abs(odom1.x - odom0.x) < 0.01, "arm mode must hold the base"
    assert all(a.mode == RT1Action.MODE_ARM for a in actions[:STEPS])


def test_two_loops_at_once_each_run_their_own_episode(tmp_path):
    """Two demos/evaluations on one machine: each must run and report its own episode, never the other's."""
    import threading

    from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig

    checkpoint = biased_checkpoint(tmp_path / "forward", mode=1, bins={7: 200})
    config = ClosedLoopConfig(checkpoint=str(checkpoint), max_episode_steps=STEPS, episode_timeout_s=120.0)
    requests = {"a": ("move_near", 7), "b": ("move_near", 8)}
    results, errors = {}, []

    def run(name: str) -> None:
        family, seed = requests[name]
        try:
            with ClosedLoop(config, family, idle_seed=99) as loop:
                results[name] = (loop.graph.domain_id, loop.run_episode(family, seed))
        except Exception as error:  # noqa: BLE001 — reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(name,)) for name in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    for name, (family, seed) in requests.items():
        _, episode = results[name]
        assert (episode.family, episode.seed) == (family, seed)
        assert episode.steps == STEPS and not episode.terminated
        assert len(episode.actions) >= STEPS and all(a.mode == RT1Action.MODE_BASE for a in episode.actions[:STEPS])


def test_each_episode_is_ended_by_its_own_answer(tmp_path):
    """Episodes back to back with a policy that terminates at once: each must end at its own first image, on an
    answer the model computed for it under its instruction — never on the previous episode's latched terminate,
    which a policy node still holding the old instruction repeats until the new one reaches it."""
    from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig

    checkpoint = biased_checkpoint(tmp_path / "terminate", mode=RT1Action.MODE_TERMINATE, bins={})
    config = ClosedLoopConfig(checkpoint=str(checkpoint), max_episode_steps=STEPS, episode_timeout_s=120.0)
    with ClosedLoop(config, "move_near", idle_seed=99) as loop:
        episodes = [loop.run_episode(family, seed) for family, seed in
                    [("move_near", 5), ("pick", 5), ("push", 6), ("move_near", 7)]]
    for episode in episodes:
        assert episode.terminated and episode.steps == 1, (episode.family, episode.seed, episode.steps)
        assert episode.actions and all(a.instruction == episode.instruction for a in episode.actions)
        assert episode.inference_ms and all(ms > 0 for ms in episode.inference_ms), episode.actions
