"""Closed-loop episodes in the simulator without ROS: an 11-d action per control step, with the node's mode rules.

``apply_rt1_action`` is the one place that maps an RT-1 action onto simulator commands the way the policy node does
(docs/integration.md "What the node does"): arm mode moves the arm and holds the base at zero; base mode drives
the base and holds the arm (no delta, gripper unchanged); terminate stops everything and ends the episode.
Demonstrations recorded through :func:`run_episode` therefore contain exactly what a policy trained on them will be
asked to reproduce.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rt1_ros.configuration.action_layout import ARM_DELTA_DIMS, BASE_DIMS, GRIPPER_DIM, MODE_DIM, ActionSpaceConfig
from rt1_ros.sim.experts import ScriptedExpert
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim
from rt1_ros.sim.tasks import Task


# Privileged simulator state recorded beside each demonstration frame. The policy never sees it; training may use
# it as an auxiliary target (rt1-train `auxiliary_state_weight`), so that the image encoder learns where the named
# object and the gripper are, which is exactly what the arm's next step depends on.
SCENE_STATE_NAMES = (
    "target_x", "target_y", "target_z",              # the instruction's object, base frame (m)
    "gripper_x", "gripper_y", "gripper_z",           # the arm's commanded end-effector target, base frame (m)
    "target_minus_gripper_x", "target_minus_gripper_y", "target_minus_gripper_z",
    "target_image_u", "target_image_v",              # where its centre is in the camera image: fractions of width
)                                                    # and height from the top-left (outside [0, 1]: out of view)


def scene_state(sim: MobileManipulatorSim, task: Task) -> np.ndarray:
    """(len(SCENE_STATE_NAMES),) float32 for the simulator's current state."""
    target = sim.to_base_frame(sim.object_position(task.target_name))
    gripper, _ = sim.arm_target()
    return np.concatenate([target, gripper, target - gripper, sim.image_position(task.target_name)]).astype(np.float32)


def apply_rt1_action(sim: MobileManipulatorSim, action: np.ndarray, action_space: ActionSpaceConfig) -> bool:
    """Command ``sim`` with one decoded action (11,), mapped onto the robot by the action space's scale and offset
    as the node maps it; True when the action terminates the episode."""
    mode_index = int(round(float(action[MODE_DIM])))
    action = np.concatenate([action_space.onto_robot(np.asarray(action[:MODE_DIM], dtype=float)), action[MODE_DIM:]])
    mode = action_space.mode_classes[min(max(mode_index, 0), len(action_space.mode_classes) - 1)]
    if mode == "arm":
        sim.apply_action(np.zeros(3), action[ARM_DELTA_DIMS], float(action[GRIPPER_DIM]))
    elif mode == "base":
        sim.apply_action(action[BASE_DIMS], np.zeros(6), sim.gripper_command)
    else:
        sim.stop()
        return True
    return False


@dataclass
class EpisodeResult:
    task: Task
    success: bool
    terminated: bool  # the policy chose terminate (rather than running out of steps)
    actions: np.ndarray  # (steps, 11)
    images: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8 each, the image each action saw
    scene_states: np.ndarray | None = None  # (steps, len(SCENE_STATE_NAMES)) when recorded, see scene_state()

    @property
    def steps(self) -> int:
        return len(self.actions)


def run_episode(
    sim: MobileManipulatorSim,
    task: Task,
    policy: Callable[[], np.ndarray],
    action_space: ActionSpaceConfig,
    max_steps: int | None = None,
    record_images: bool = False,
    perturb: Callable[[np.ndarray], np.ndarray] | None = None,
    record_scene_state: bool = False,
) -> EpisodeResult:
    """Run ``policy`` (called once per control step, returns (11,)) on the already reset ``sim``.

    ``perturb`` maps the recorded action onto the one the simulator executes (DART-style noise injection: the
    demonstration keeps the expert's label while the state drifts off the expert's path, so the data shows how to
    recover). The recorded ``actions`` are always the policy's own. ``record_scene_state`` also keeps
    :func:`scene_state` at every step, taken when the step's image is.
    """
    max_steps = max_steps or sim.config.tasks.family(task.family).max_steps
    period = sim.config.physics.control_period_s
    actions, images, states = [], [], []
    terminated = False
    for _ in range(max_steps):
        if record_images:
            images.append(sim.render())
        if record_scene_state:
            states.append(scene_state(sim, task))
        action = np.asarray(policy(), dtype=float)
        actions.append(action)
        if apply_rt1_action(sim, perturb(action) if perturb else action, action_space):
            terminated = True
            break
        sim.advance(period)
    return EpisodeResult(
        task=task,
        success=bool(sim.success()),
        terminated=terminated,
        actions=np.array(actions).reshape(-1, MODE_DIM + 1),
        images=images,
        scene_states=np.stack(states) if record_scene_state and states else None,
    )


def run_expert_episode(
    sim: MobileManipulatorSim,
    task_family: str | None,
    seed: int,
    action_space: ActionSpaceConfig | None = None,
    record_images: bool = False,
) -> EpisodeResult:
    """Reset ``sim`` to (``task_family``, ``seed``) and let the scripted expert solve it."""
    action_space = action_space or ActionSpaceConfig.from_yaml()
    task = sim.reset(task_family, seed)
    expert = ScriptedExpert(sim, action_space)
    expert.reset(task)
    return run_episode(sim, task, expert.act, action_space, record_images=record_images)
