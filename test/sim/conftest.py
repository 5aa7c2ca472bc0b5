"""Fixtures of the simulator tests: one simulator and the action space per test module (a module's tests may share
its state, never another module's), the two episodes the failure-analysis tests of every family run, the physics
tests' scripted arm moves, and cabinet-frame points in the world."""
import math

import numpy as np
import pytest

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim


@pytest.fixture(scope="module")
def sim():
    simulator = MobileManipulatorSim()
    yield simulator
    simulator.close()


@pytest.fixture(scope="module")
def space():
    return ActionSpaceConfig.from_yaml()


@pytest.fixture(scope="module")
def idle_failure(sim, space):
    """``idle_failure(family, seed, steps)``: an arm-mode policy that never moves runs ``steps`` steps of the
    episode; returns the result and the failure tracer's reason."""
    from rt1_ros.sim.episode import run_episode
    from rt1_ros.sim.failure_analysis import FailureTracer

    def run(family: str, seed: int, steps: int):
        task = sim.reset(family, seed)
        tracer = FailureTracer(sim, task)
        idle = np.zeros(11)
        idle[10] = space.mode_index("arm")

        def policy():
            tracer.after_step()
            return idle

        result = run_episode(sim, task, policy, space, max_steps=steps)
        return result, tracer.classify(result.success)

    return run


@pytest.fixture(scope="module")
def let_go_while_carrying(sim, space):
    """``let_go_while_carrying(family, seed)``: the expert up to its carry phase (the target lifted), then the
    gripper opens where it is and the object falls for a second; returns the task and the failure tracer's reason."""
    from rt1_ros.sim.episode import apply_rt1_action
    from rt1_ros.sim.experts import ScriptedExpert
    from rt1_ros.sim.failure_analysis import FailureTracer

    def run(family: str, seed: int):
        task = sim.reset(family, seed)
        expert = ScriptedExpert(sim, space)
        expert.reset(task)
        tracer = FailureTracer(sim, task)
        for _ in range(60):
            if expert.phase == "carry":
                break
            apply_rt1_action(sim, expert.act(), space)
            sim.advance(sim.config.physics.control_period_s)
            tracer.after_step()
        assert expert.phase == "carry" and sim.is_grasped(task.target_name)
        sim.apply_action(np.zeros(3), np.zeros(6), 0.0)
        sim.advance(1.0)
        tracer.after_step()
        return task, tracer.classify(sim.success())

    return run


@pytest.fixture(scope="module")
def move_arm(sim):
    """``move_arm(goal, gripper, step=0.04, settle=0.5)``: scripted arm moves for the physics tests, straight-line
    deltas of the commanded target toward ``goal`` (base frame, at most ``step`` per control step, up to 60 steps),
    then ``settle`` seconds holding it."""

    def move(goal, gripper: float, step: float = 0.04, settle: float = 0.5) -> None:
        period = sim.config.physics.control_period_s
        for _ in range(60):
            offset = goal - sim.arm_target()[0]
            distance = np.linalg.norm(offset)
            if distance < 1e-4:
                break
            sim.apply_action(np.zeros(3), np.r_[offset * min(1.0, step / distance), np.zeros(3)], gripper)
            sim.advance(period)
        sim.apply_action(np.zeros(3), np.zeros(6), gripper)
        sim.advance(settle)

    return move


@pytest.fixture(scope="module")
def cabinet_point(sim):
    """``cabinet_point(local)``: the world point (3,) of a cabinet-frame point (x out of the front, y to its left, z
    above the table top), the cabinet where the simulator's body now stands (read from the model, not the task)."""

    def point(local) -> np.ndarray:
        x, y, yaw = sim.cabinet_pose()
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([x + c * local[0] - s * local[1], y + s * local[0] + c * local[1],
                         sim.config.table.height + local[2]])

    return point
