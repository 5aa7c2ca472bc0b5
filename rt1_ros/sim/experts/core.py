"""The scripted expert: privileged-state controllers that emit the 11-d RT-1 action at the control rate.

They exist to generate behaviour-cloning demonstrations, so they are deliberately plain: straight-line end-effector
moves at a constant speed (``max_arm_step`` per step, the last step shorter), one phase at a time, the gripper never
half-closed, the base and the arm never commanded together. The action layout is
``rt1_ros.configuration.action_layout``'s: arm x y z roll pitch yaw (per-step deltas, base frame), gripper closedness,
base vx vy yaw-rate, mode as a class index of ``ActionSpaceConfig.mode_classes``; continuous values are clipped to the
action-space ranges.

:class:`ScriptedExpert` holds what every family shares: the phase machine (:meth:`ScriptedExpert.act` hands the step
to the task's family), the grasp (pick's, also the receptacle families') and the motion helpers. Each family group's
phases are a mixin in its own module, which says them phase by phase: `tabletop` (pick, push, move_near), `objects`
(move_object_near, knock_over, place_upright), `receptacles` (place_into, pick_from, place_into_drawer), `drawers`
(open_drawer, close_drawer).

The experts read the simulator's *commanded* arm target (not the measured end effector) to compute deltas, so a
sequence of deltas lands exactly on the goal; the measured pose is only used to wait for the arm to arrive.

When a policy drives and the expert only labels (DAgger, ``rt1-generate --policy``), call :meth:`follow_state`
before each :meth:`act`: a phase ends when the expert's own moves reach a waypoint to 2 mm, which a policy's moves
rarely do, so on its own the phase machine would label "approach" for a whole episode. ``follow_state`` recognises
the phase from the state instead (gripper, grasp, where the arm is relative to the object), within
``follow_tolerance``.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, GRIPPER_DIM, MODE_DIM, NUM_ACTION_DIMS,
                                                 ActionSpaceConfig)
from rt1_ros.sim.config import DRAWER_FAMILIES
from rt1_ros.sim.experts.drawers import DrawerPhases
from rt1_ros.sim.experts.objects import ObjectFamilyPhases
from rt1_ros.sim.experts.receptacles import ReceptaclePhases
from rt1_ros.sim.experts.tabletop import TabletopPhases
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim
from rt1_ros.sim.tasks import Task

PHASES = ("approach", "descend", "close", "lift", "push", "retreat", "drive", "carry", "lower", "release", "turn",
          "back_off", "reach", "insert", "pull", "done")
# Families whose phase follow_state() can recognise from the state (DAgger labelling, rt1-generate --policy).
RELABELLING_FAMILIES = ("pick", "push", "move_near")


class ScriptedExpert(TabletopPhases, ObjectFamilyPhases, ReceptaclePhases, DrawerPhases):
    """One expert for every family: :meth:`reset` with a task, then :meth:`act` once per control step until
    :attr:`done`. The families' phases come from the group mixins; everything they share is here."""

    def __init__(self, sim: MobileManipulatorSim, action_space: ActionSpaceConfig | None = None) -> None:
        self.sim = sim
        self.action_space = action_space or ActionSpaceConfig.from_yaml()
        self.config = sim.config
        self.task: Task | None = None
        self.phase = "idle"
        self.steps_in_phase = 0
        self._anchor = np.zeros(3)  # a base-frame point a phase is defined relative to
        self._rerun = False
        self._steps_there = 0  # control steps the commanded target has been at a _pose_towards goal
        self._carry_path: list[np.ndarray] = []  # receptacle families: the carry's waypoints still ahead
        self._carry_height = 0.0  # place_into_drawer: the arm target's height while carrying (the retreat's)
        self.following = False  # another controller drives: follow_state() before each act()

    def reset(self, task: Task) -> None:
        self.task = task
        self.phase = "drive" if task.family == "move_near" else "reach" if task.family in DRAWER_FAMILIES \
            else "approach"
        self.steps_in_phase = 0
        self.following = False

    def follow_state(self) -> None:
        """Set the phase from the simulator's state, for when another controller took the last step. Phases with a
        timer or an anchor (close, lift, push, retreat) are kept while the state still fits them; move_near's drive
        reads the state every step already."""
        if self.task is None:
            raise RuntimeError("reset the expert with a task first")
        if self.task.family not in RELABELLING_FAMILIES:
            raise NotImplementedError(f"follow_state (DAgger labelling) is not implemented for {self.task.family}: "
                                      "its phases are recognised only along the expert's own moves; record its "
                                      "demonstrations with the expert driving")
        self.following = True
        if self.phase == "done":
            return
        if self.task.family == "pick":
            self._follow_pick()
        elif self.task.family == "push":
            self._follow_push()

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def act(self) -> np.ndarray:
        """The next action (11,), for the simulator's current state."""
        if self.task is None:
            raise RuntimeError("reset the expert with a task first")
        policies = {"pick": self._pick, "push": self._push, "move_near": self._move_near,
                    "move_object_near": self._move_object_near, "knock_over": self._knock_over,
                    "place_upright": self._place_upright, "place_into": self._receptacle_task,
                    "pick_from": self._receptacle_task, "place_into_drawer": self._receptacle_task,
                    "open_drawer": self._open_drawer, "close_drawer": self._close_drawer}
        if self.task.family not in policies:
            raise KeyError(f"no expert for task family {self.task.family!r}")
        # Arriving at a waypoint yields a zero step; start the next phase in the same control step instead, so the
        # demonstrations contain no idle frames at phase boundaries (bounded: phases never chain endlessly).
        for _ in range(len(PHASES)):
            self._rerun = False
            action = policies[self.task.family]()
            if not self._rerun:
                break
        self.steps_in_phase += 1
        return action

    # ------------------------------------------------------------------ shared by several families
    def _grasp(self, obj: np.ndarray, grasp_z: float, hover_z: float) -> np.ndarray:
        """approach -> descend -> close -> (lift) on the object at ``obj`` (base frame); pick's and the receptacle
        families' grasp."""
        expert = self.config.expert
        if self.phase == "approach":
            goal = np.array([obj[0], obj[1], hover_z])
            action, arrived = self._arm_towards(goal, expert.max_arm_step, gripper=0.0, align_yaw=True)
            return self._next_if(arrived, "descend", action, immediate=True)
        if self.phase == "descend":
            goal = np.array([obj[0], obj[1], grasp_z])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=0.0, align_yaw=True)
            if arrived:
                self._anchor = goal
            return self._next_if(arrived, "close", action, immediate=True)
        action = self._arm_action(np.zeros(6), gripper=1.0)
        return self._next_if(self.steps_in_phase + 1 >= expert.close_steps, "lift", action)

    def _lower_then_release(self, release_steps: int) -> np.ndarray:
        """lower -> release: down onto the anchor with the object held, then the gripper open for ``release_steps``
        steps before the retreat."""
        expert = self.config.expert
        if self.phase == "lower":
            action, arrived = self._arm_towards(self._anchor, expert.max_descend_step, gripper=1.0)
            return self._next_if(arrived, "release", action, immediate=True)
        action = self._arm_action(np.zeros(6), gripper=0.0)
        return self._next_if(self.steps_in_phase + 1 >= release_steps, "retreat", action)

    def _retreat(self, height: float, max_step: float, gripper: float) -> np.ndarray:
        """Rise straight over the last anchor to ``height`` (base frame); there, done when the task succeeded,
        otherwise start again from the approach."""
        goal = np.array([self._anchor[0], self._anchor[1], height])
        action, arrived = self._arm_towards(goal, max_step, gripper=gripper)
        if arrived and not self.sim.success():
            return self._next_if(True, "approach", action, immediate=True)
        return self._next_if(arrived, "done", action, immediate=True)

    def _enter(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.steps_in_phase = 0

    def _pick_heights(self, obj: np.ndarray, support_z: float | None = None) -> tuple[float, float]:
        """(grasp z, hover z) in the base frame for an object at ``obj`` resting on a surface at ``support_z``
        (default: the table top)."""
        expert = self.config.expert
        pad_half_height = self.config.gripper.pad_half_extents[2]
        support_z = self.config.table.height if support_z is None else support_z
        grasp_z = max(obj[2], support_z + pad_half_height + expert.pad_table_clearance)
        return grasp_z, self.config.table.height + expert.hover_height

    # ------------------------------------------------------------------ motion helpers
    def _arm_towards(
        self, goal: np.ndarray, max_step: float, gripper: float, align_yaw: bool = False,
        yaw_to: float | None = None,
    ) -> tuple[np.ndarray, bool]:
        """Arm-mode action moving the target straight at ``goal`` (base frame); True once there and settled.
        ``align_yaw``: turn the closing axis onto a cube target's face normal; ``yaw_to``: turn the hand's x (the
        pads' width, across the closing axis) onto this base-frame heading, either way round."""
        expert = self.config.expert
        target, rotation = self.sim.arm_target()
        offset = goal - target
        distance = float(np.linalg.norm(offset))
        step = offset if distance <= max_step else offset * (max_step / distance)
        yaw_step = 0.0
        if align_yaw:
            yaw_error = self._grasp_yaw_error(rotation)
        elif yaw_to is not None:
            half_turn = math.pi
            yaw_error = (yaw_to - math.atan2(rotation[1, 0], rotation[0, 0]) + half_turn / 2) % half_turn \
                - half_turn / 2
        else:
            yaw_error = 0.0
        if align_yaw or yaw_to is not None:
            yaw_step = float(np.clip(yaw_error, -expert.max_rotation_step, expert.max_rotation_step))
        measured = self.sim.end_effector_position()
        tolerance = expert.follow_tolerance if self.following else expert.position_tolerance
        arrived = (
            distance < tolerance
            and abs(yaw_error) < expert.max_rotation_step / 4
            and float(np.linalg.norm(measured - goal)) < expert.settle_tolerance
        )
        return self._arm_action(np.array([*step, 0.0, 0.0, yaw_step]), gripper), arrived

    def _grasp_yaw_error(self, rotation: np.ndarray) -> float:
        """Yaw that turns the fingers' closing axis onto the target's graspable direction (a cube face normal)."""
        if self.task.target.shape != "cube":
            return 0.0
        closing_axis = rotation[:, 1]
        closing_yaw = math.atan2(closing_axis[1], closing_axis[0])
        object_yaw = self.sim.object_yaw(self.task.target_name) - self.sim.odometry().yaw
        quarter = math.pi / 2
        return (object_yaw - closing_yaw + quarter / 2) % quarter - quarter / 2

    def _arm_action(self, delta: np.ndarray, gripper: float) -> np.ndarray:
        action = self._blank(mode="arm", gripper=gripper)
        action[ARM_DELTA_DIMS] = delta
        return self._clip(action)

    def _terminate(self, gripper: float) -> np.ndarray:
        self.phase = "done"
        return self._blank(mode="terminate", gripper=gripper)

    def _blank(self, mode: str, gripper: float) -> np.ndarray:
        action = np.zeros(NUM_ACTION_DIMS)
        action[GRIPPER_DIM] = gripper
        action[MODE_DIM] = self.action_space.mode_index(mode)
        return action

    def _clip(self, action: np.ndarray) -> np.ndarray:
        action[:MODE_DIM] = np.clip(action[:MODE_DIM], self.action_space.low, self.action_space.high)
        return action

    def _next_if(self, condition: bool, phase: str, action: np.ndarray, immediate: bool = False) -> np.ndarray:
        """Switch to ``phase`` when ``condition``; ``immediate``: the next phase acts in this same step."""
        if condition:
            self._steps_there = 0
            self.phase = phase
            self.steps_in_phase = -1 if not immediate else 0  # act() increments after this step
            self._rerun = immediate
        return action
