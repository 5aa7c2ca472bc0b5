"""The whole loop over real topics: sim_node (lockstep) ⇄ rt1_node, a few steps, and the robot moves as commanded.

The policies are tiny RT-1 checkpoints whose heads are biased to one action, so the direction of motion is known.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import RosHarness, biased_checkpoint, wait_for  # noqa: E402

from rt1_ros.msg import RT1Action  # noqa: E402

BIN_MAX, BIN_MIN = 255, 0
STEPS = 4


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


def run_lockstep_episode(ros, checkpoint, family: str):
    from rt1_ros.node.rt1_node import Rt1Node
    from rt1_ros.sim.sim_node import SimNode

    ros.new_namespace()
    actions = ros.collect(RT1Action, "rt1_action")
    rt1 = Rt1Node(namespace=ros.namespace, context=ros.context,
                  cli_args=["--ros-args", "-r", "image:=camera/image_raw"],
                  parameter_overrides=[Parameter("checkpoint", value=str(checkpoint)),
                                       Parameter("device", value="cpu"),
                                       Parameter("control_trigger", value="image"),
                                       Parameter("start_enabled", value=True),
                                       Parameter("ema_alpha", value=1.0),
                                       Parameter("use_sim_time", value=True)])
    ros.executor.add_node(rt1)
    sim = SimNode(namespace=ros.namespace, context=ros.context,
                  parameter_overrides=[Parameter("lockstep", value=True), Parameter("task_family", value=family),
                                       Parameter("seed", value=3), Parameter("max_episode_steps", value=STEPS),
                                       Parameter("camera_width", value=128), Parameter("camera_height", value=128)])
    start = (sim.sim.odometry(), sim.sim.end_effector_position().copy())
    ros.executor.add_node(sim)
    assert wait_for(lambda: sim.sim.odometry() is not None and len(actions) >= STEPS, timeout=60), \
        f"only {len(actions)} policy steps arrived"
    assert wait_for(lambda: sim._done, timeout=30)
    end = (sim.sim.odometry(), sim.sim.end_effector_position().copy())
    ros.remove(sim)
    ros.remove(rt1)
    return start, end, actions


def test_base_drives_forward_in_its_own_frame(ros, tmp_path):
    checkpoint = biased_checkpoint(tmp_path / "forward", mode=1, bins={7: BIN_MAX})
    (odom0, _), (odom1, _), actions = run_lockstep_episode(ros, checkpoint, "move_near")
    heading = np.array([np.cos(odom0.yaw), np.sin(odom0.yaw)])
    travelled = np.array([odom1.x - odom0.x, odom1.y - odom0.y])
    assert travelled @ heading > 0.3, f"base moved {travelled} for a forward command"
    assert abs(odom1.yaw - odom0.yaw) < 0.1
    assert all(a.mode == RT1Action.MODE_BASE for a in actions[:STEPS])


def test_end_effector_rises_for_an_upward_arm_delta(ros, tmp_path):
    checkpoint = biased_checkpoint(tmp_path / "up", mode=0, bins={2: BIN_MAX, 6: BIN_MIN})
    (odom0, ee0), (odom1, ee1), actions = run_lockstep_episode(ros, checkpoint, "pick")
    assert ee1[2] - ee0[2] > 0.05, f"end effector z went {ee0[2]:.3f} -> {ee1[2]:.3f}"
    assert abs(odom1.x - odom0.x) < 0.01, "arm mode must hold the base"
    assert all(a.mode == RT1Action.MODE_ARM for a in actions[:STEPS])


def test_two_loops_at_once_each_run_their_own_episode(tmp_path):
    """Two demos/evaluations on one machine: each must run and report its own episode, never the other's."""
    import threading

    from rt1_ros.closed_loop import ClosedLoop, ClosedLoopConfig

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
