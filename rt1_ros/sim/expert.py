"""Scripted experts: privileged-state controllers that emit the 11-d RT-1 action at the control rate.

They exist to generate behaviour-cloning demonstrations, so they are deliberately plain: straight-line end-effector
moves at a constant speed (``max_arm_step`` per step, the last step shorter), one phase at a time, the gripper never
half-closed, the base and the arm never commanded together. The action layout is
``rt1_ros.configuration.action_layout``'s: arm x y z roll pitch yaw (per-step deltas, base frame), gripper closedness,
base vx vy yaw-rate, mode as a class index of ``ActionSpaceConfig.mode_classes``; continuous values are clipped to the
action-space ranges.

Phases per family
* pick:      approach (hover over the object, open, yaw-aligned to a cube face) -> descend -> close -> lift ->
             terminate. If the lift ends without a grasp, it reopens and approaches again.
* push:      approach (closed gripper, hover beside the object on the side opposite the push) -> descend ->
             push (sideways through the object) -> retreat (up) -> terminate; retries like pick.
* move_near: drive (holonomic, straight to a parking pose in front of the object facing the table) -> terminate.
* open_drawer:  reach (open gripper turned to point into the cabinet along the drawer's axis, the fingers closing
             vertically, ``drawer_approach_standoff`` in front of the handle) -> insert (the bar between the
             fingers) -> close -> pull (along the drawer's axis) -> release (open) -> back_off -> terminate. The
             handles stack vertically, so they are approached from the front, never from above. If the drawer is not
             open enough after backing off, it reaches again.
* close_drawer: reach (closed gripper pointing into the cabinet, in front of the open drawer's front beside its
             handle) -> push (to the closed position and a little past; the joint's stop holds the drawer) ->
             back_off -> terminate; reaches again if the drawer is still open.
* place_into, pick_from: pick's approach -> descend -> close, with the grasp height taken over the receptacle's
             bottom plate when the object is in it -> lift (reopens and approaches again without a grasp) -> carry
             (at the lifted height, to above the receptacle's centre, or to a free spot on the table:
             `rt1_ros.sim.tasks.put_down_spot`) -> lower (the object's bottom ``release_gap`` above the plate or the
             table) -> release (open) -> retreat (up) -> terminate; approaches again if the check fails then.

The object families travel at ``tall_hover_height`` (over standing cans):
* move_object_near: approach -> descend -> close -> lift (pick's, yaw-aligned to a cube face) -> carry (to the drop
             spot beside the reference on the target's side, `tasks.place_spot`, turning the fingers' closing axis
             across the line to the reference so no finger comes between) -> lower -> release -> retreat (up) ->
             terminate. Nothing held after the lift: approach again; not placed after the retreat: pick it again.
* knock_over: approach (closed gripper, closing axis along base x, over a point behind the can) -> descend (the
             pads' centre ``knock_height`` under the can's top) -> push (base +x, through where the can stood) ->
             back_off (base -x) -> retreat (up) -> terminate; not knocked over after the retreat: approach again.
* place_upright: approach (open, pointing down, the closing axis across the lying can) -> descend -> close ->
             lift -> turn (a quarter turn about the closing axis: the can's axis vertical, the hand pointing forward)
             -> lower (until the can's bottom is ``upright_release`` over the table) -> release -> back_off (the open
             hand slides back off the can) -> retreat (up) -> terminate.

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

from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, BASE_DIMS, GRIPPER_DIM, MODE_DIM, NUM_ACTION_DIMS,
                                                 ActionSpaceConfig)
from rt1_ros.sim.config import DRAWER_FAMILIES
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim, rotation_error
from rt1_ros.sim.receptacles import receptacle_geometry
from rt1_ros.sim.scene import ARM_JOINTS, object_half_height, object_half_width
from rt1_ros.sim.tasks import Task
from rt1_ros.sim.tasks.drawers import drawer_handle_world
from rt1_ros.sim.tasks.objects import axis_tilt, place_spot
from rt1_ros.sim.tasks.receptacles import RECEPTACLE_FAMILIES, put_down_spot


GRASP_REACH_M = 0.02  # follow_state: a gripper closed this near the grasp pose is closing on the object

PHASES = ("approach", "descend", "close", "lift", "push", "retreat", "drive", "carry", "lower", "release", "turn",
          "back_off", "reach", "insert", "pull", "done")
OBJECT_FAMILIES = ("move_object_near", "knock_over", "place_upright")
TURN_SETTLE_RAD = 0.05  # the measured hand is within this of the commanded orientation before a turn counts as done


def wrap_angle(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class ScriptedExpert:
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
        if self.task.family in DRAWER_FAMILIES:
            raise NotImplementedError(f"follow_state (DAgger relabelling) is not implemented for "
                                      f"{self.task.family}: its phases cannot yet be recognised from the state")
        if self.task.family in OBJECT_FAMILIES:
            raise NotImplementedError(f"follow_state (DAgger labelling) is not implemented for {self.task.family}: "
                                      "its phases are recognised only along the expert's own moves")
        self.following = True
        if self.phase == "done":
            return
        if self.task.family == "pick":
            self._follow_pick()
        elif self.task.family == "push":
            self._follow_push()
        elif self.task.family in RECEPTACLE_FAMILIES:
            raise NotImplementedError(f"follow_state (DAgger labelling) is not implemented for {self.task.family}: "
                                      "record its demonstrations with the expert driving")

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
                    "pick_from": self._receptacle_task, "open_drawer": self._open_drawer,
                    "close_drawer": self._close_drawer}
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

    # ------------------------------------------------------------------ families
    def _pick(self) -> np.ndarray:
        expert, sim = self.config.expert, self.sim
        obj = sim.to_base_frame(sim.object_position(self.task.target_name))
        grasp_z, hover_z = self._pick_heights(obj)
        if self.phase in ("approach", "descend", "close"):
            return self._grasp(obj, grasp_z, hover_z)
        if self.phase == "lift":
            goal = self._anchor + np.array([0.0, 0.0, expert.lift_height])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=1.0)
            if arrived and not sim.success():
                return self._next_if(True, "approach", self._arm_action(np.zeros(6), gripper=0.0))
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=1.0)

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

    def _follow_pick(self) -> None:
        sim, tolerance = self.sim, self.config.expert.follow_tolerance
        name = self.task.target_name
        obj = sim.to_base_frame(sim.object_position(name))
        grasp_z, hover_z = self._pick_heights(obj)
        target, _ = sim.arm_target()
        off_centre = float(np.linalg.norm(target[:2] - obj[:2]))
        if sim.gripper_command > 0.5:
            if self.phase in ("close", "lift"):
                return  # closing, or lifting (which reopens and starts again if nothing came up)
            # Closed around the object, if not exactly where the expert would have: let the fingers finish and lift
            # (the lift reopens and starts again if nothing came up), rather than reopen at once.
            around = off_centre < GRASP_REACH_M and abs(target[2] - grasp_z) < GRASP_REACH_M
            if sim.is_grasped(name) or around:
                self._enter("close")
                self._anchor = np.array([target[0], target[1], grasp_z])
            else:
                self._enter("approach")  # closed on nothing: approach reopens and starts again
            return
        # A phase is entered within `tolerance` and kept within twice that, so noisy steps do not flip it.
        band = 2 * tolerance if self.phase == "descend" else tolerance
        self._enter("descend" if off_centre < band and target[2] < hover_z + tolerance else "approach")

    def _follow_push(self) -> None:
        if self.phase == "retreat":
            return
        sim, tolerance = self.sim, self.config.expert.follow_tolerance
        sign, standoff, push_z, hover_z, travel = self._push_geometry()
        name = self.task.target_name
        target, _ = sim.arm_target()
        # Where the expert's push starts: beside the object as it rested, on the side opposite the push.
        rest = sim.to_base_frame(sim.rest_position(name))
        start = np.array([rest[0], rest[1] - sign * standoff, push_z])
        progress = sign * (target[1] - start[1])
        # A phase is entered within `tolerance` and kept within twice that, so noisy steps do not flip it.
        band = 2 * tolerance if self.phase == "push" else tolerance
        if abs(target[2] - push_z) < band and abs(target[0] - start[0]) < band:
            if -band < progress < travel - tolerance:
                if self.phase != "push":
                    self._enter("push")
                    self._anchor = start
                return
            if progress >= travel - tolerance:
                self._enter("retreat")
                self._anchor = target.copy()
                return
        if sim.success():
            # Pushed far enough and off the push line: what the expert does after its push, retreat and terminate.
            self._enter("retreat")
            self._anchor = target.copy()
            return
        obj = sim.to_base_frame(sim.object_position(name))
        beside = np.array([obj[0], obj[1] - sign * standoff])
        band = 2 * tolerance if self.phase == "descend" else tolerance
        in_column = float(np.linalg.norm(target[:2] - beside)) < band and target[2] < hover_z + tolerance
        self._enter("descend" if in_column else "approach")

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

    def _push_geometry(self) -> tuple[float, float, float, float, float]:
        """(direction sign, standoff from the object's centre, push z, hover z, push travel)."""
        expert, task = self.config.expert, self.task
        sign = 1.0 if task.direction == "left" else -1.0
        # A cube may sit at any yaw: keep clear of its corners, not just its faces.
        half_width = object_half_width(self.config, task.target.shape)
        if task.target.shape == "cube":
            half_width *= math.sqrt(2.0)
        pad_thickness = 2 * self.config.gripper.pad_half_extents[1]  # closed pads: one thickness each side
        standoff = half_width + pad_thickness + expert.push_clearance
        pad_half_height = self.config.gripper.pad_half_extents[2]
        push_z = self.config.table.height + pad_half_height + expert.pad_table_clearance
        hover_z = self.config.table.height + expert.hover_height
        travel = expert.push_clearance + self.config.tasks.push_margin + expert.push_overshoot
        return sign, standoff, push_z, hover_z, travel

    def _push(self) -> np.ndarray:
        expert, sim = self.config.expert, self.sim
        obj = sim.to_base_frame(sim.object_position(self.task.target_name))
        sign, standoff, push_z, hover_z, travel = self._push_geometry()
        if self.phase == "approach":
            goal = np.array([obj[0], obj[1] - sign * standoff, hover_z])
            action, arrived = self._arm_towards(goal, expert.max_arm_step, gripper=1.0)
            return self._next_if(arrived, "descend", action, immediate=True)
        if self.phase == "descend":
            goal = np.array([obj[0], obj[1] - sign * standoff, push_z])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=1.0)
            if arrived:
                self._anchor = goal
            return self._next_if(arrived, "push", action, immediate=True)
        if self.phase == "push":
            goal = self._anchor + np.array([0.0, sign * travel, 0.0])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=1.0)
            if arrived:
                self._anchor = goal
            return self._next_if(arrived, "retreat", action, immediate=True)
        if self.phase == "retreat":
            goal = np.array([self._anchor[0], self._anchor[1], hover_z])
            action, arrived = self._arm_towards(goal, expert.max_arm_step, gripper=1.0)
            if arrived and not sim.success():
                return self._next_if(True, "approach", action, immediate=True)
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=1.0)

    def _move_near(self) -> np.ndarray:
        expert, sim = self.config.expert, self.sim
        if self.phase != "drive":
            return self._terminate(gripper=0.0)
        obj = sim.object_position(self.task.target_name)
        table_edge_x = self.config.table.center[0] - self.config.table.half_extents[0]
        park_x = table_edge_x - self.config.base.half_extents[0] - expert.base_table_clearance
        goal = np.array([min(obj[0] - expert.base_standoff, park_x), obj[1]])
        goal_yaw = 0.0  # square on to the table, whose edge runs along world y
        odom = sim.odometry()
        error_world = goal - np.array([odom.x, odom.y])
        c, s = math.cos(odom.yaw), math.sin(odom.yaw)
        error_base = np.array([c * error_world[0] + s * error_world[1], -s * error_world[0] + c * error_world[1]])
        distance = float(np.linalg.norm(error_base))
        yaw_error = wrap_angle(goal_yaw - odom.yaw)
        if distance < expert.base_position_tolerance and abs(yaw_error) < expert.base_yaw_tolerance:
            self.phase = "done"
            return self._terminate(gripper=0.0)
        period = self.config.physics.control_period_s
        # Constant cruise speed, and a last step that lands on the goal instead of overshooting it.
        speed = min(expert.base_max_speed, distance / period)
        velocity = error_base / distance * speed if distance > 0 else np.zeros(2)
        yaw_rate = float(np.clip(expert.base_yaw_gain * yaw_error, -expert.base_max_yaw_rate, expert.base_max_yaw_rate))
        if abs(yaw_rate) * period > abs(yaw_error):
            yaw_rate = yaw_error / period
        action = self._blank(mode="base", gripper=0.0)
        action[BASE_DIMS] = (velocity[0], velocity[1], yaw_rate)
        return self._clip(action)

    # ------------------------------------------------------------------ object families
    def _tall_hover_z(self) -> float:
        return self.config.table.height + self.config.expert.tall_hover_height

    def _move_object_near(self) -> np.ndarray:
        expert, sim, task = self.config.expert, self.sim, self.task
        name = task.target_name
        obj = sim.to_base_frame(sim.object_position(name))
        grasp_z, _ = self._pick_heights(obj)
        hover_z = self._tall_hover_z()
        if self.phase == "approach":
            action, arrived = self._arm_towards(np.array([obj[0], obj[1], hover_z]), expert.max_arm_step, gripper=0.0,
                                                align_yaw=True)
            return self._next_if(arrived, "descend", action, immediate=True)
        if self.phase == "descend":
            goal = np.array([obj[0], obj[1], grasp_z])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=0.0, align_yaw=True)
            return self._next_if(arrived, "close", action, immediate=True)
        if self.phase == "close":
            action = self._arm_action(np.zeros(6), gripper=1.0)
            return self._next_if(self.steps_in_phase + 1 >= expert.close_steps, "lift", action)
        if self.phase == "lift":
            target, _ = sim.arm_target()
            action, arrived = self._arm_towards(np.array([target[0], target[1], hover_z]), expert.max_descend_step,
                                                gripper=1.0)
            if arrived and not sim.is_grasped(name):
                return self._next_if(True, "approach", self._arm_action(np.zeros(6), gripper=0.0))
            return self._next_if(arrived, "carry", action, immediate=True)
        reference_world = sim.object_position(task.reference.name)
        spot_world = place_spot(self.config, sim.rest_position(name)[:2], reference_world[:2])
        if spot_world is None:  # the sampler keeps the drop spot on the table; only a moved reference gets here
            spot_world = reference_world[:2]
        spot = sim.to_base_frame(np.array([*spot_world, 0.0]))[:2]
        reference = sim.to_base_frame(reference_world)
        if self.phase == "carry":
            # The closing axis across the line to the reference: the fingers sit beside the drop spot, not between.
            towards = reference[:2] - spot
            action, arrived = self._arm_towards(np.array([spot[0], spot[1], hover_z]), expert.max_arm_step,
                                                gripper=1.0, yaw_to=math.atan2(towards[1], towards[0]))
            if arrived:
                bottom = obj[2] - object_half_height(self.config, task.target.shape)
                drop = bottom - (self.config.table.height + expert.release_height)
                self._anchor = np.array([spot[0], spot[1], max(grasp_z, sim.arm_target()[0][2] - drop)])
            return self._next_if(arrived, "lower", action, immediate=True)
        if self.phase == "lower":
            action, arrived = self._arm_towards(self._anchor, expert.max_descend_step, gripper=1.0)
            return self._next_if(arrived, "release", action, immediate=True)
        if self.phase == "release":
            action = self._arm_action(np.zeros(6), gripper=0.0)
            return self._next_if(self.steps_in_phase + 1 >= expert.close_steps, "retreat", action)
        if self.phase == "retreat":
            goal = np.array([self._anchor[0], self._anchor[1], hover_z])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=0.0)
            if arrived and not sim.success():
                return self._next_if(True, "approach", action, immediate=True)
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=0.0)

    def _knock_geometry(self) -> tuple[float, float]:
        """(standoff of the closed pads' centre behind the can's centre, push z)."""
        expert, cans = self.config.expert, self.config.cans
        standoff = cans.radius + 2 * self.config.gripper.pad_half_extents[1] + expert.knock_clearance
        push_z = self.config.table.height + 2 * cans.half_height - expert.knock_height
        return standoff, push_z

    def _knock_over(self) -> np.ndarray:
        """The closing axis along the push (the hand's x across it): the can meets one pad's flat back, never the
        seam between the closed pads, whose edges would pinch its rim as it tips."""
        expert, sim = self.config.expert, self.sim
        across = math.pi / 2
        can = sim.to_base_frame(sim.object_position(self.task.target_name))
        standoff, push_z = self._knock_geometry()
        hover_z = self._tall_hover_z()
        if self.phase == "approach":
            goal = np.array([can[0] - standoff, can[1], hover_z])
            action, arrived = self._arm_towards(goal, expert.max_arm_step, gripper=1.0, yaw_to=across)
            return self._next_if(arrived, "descend", action, immediate=True)
        if self.phase == "descend":
            goal = np.array([can[0] - standoff, can[1], push_z])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=1.0, yaw_to=across)
            if arrived:
                self._anchor = goal
            return self._next_if(arrived, "push", action, immediate=True)
        if self.phase == "push":
            goal = self._anchor + np.array([expert.knock_clearance + expert.knock_travel, 0.0, 0.0])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=1.0)
            if arrived:
                self._anchor = goal - np.array([expert.knock_back_off, 0.0, 0.0])
            return self._next_if(arrived, "back_off", action, immediate=True)
        if self.phase == "back_off":  # away from the falling can first: rising at once would drag it up the pads
            action, arrived = self._arm_towards(self._anchor, expert.max_descend_step, gripper=1.0)
            return self._next_if(arrived, "retreat", action, immediate=True)
        if self.phase == "retreat":
            goal = np.array([self._anchor[0], self._anchor[1], hover_z])
            action, arrived = self._arm_towards(goal, expert.max_arm_step, gripper=1.0)
            if arrived and not sim.success():
                return self._next_if(True, "approach", action, immediate=True)
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=1.0)

    def _place_upright(self) -> np.ndarray:
        expert, sim = self.config.expert, self.sim
        name = self.task.target_name
        table = self.config.table.height
        can = sim.to_base_frame(sim.object_position(name))
        hover_z = self._tall_hover_z()
        if self.phase in ("approach", "descend"):
            axis = sim.to_base_frame(sim.object_axis(name) + sim.object_position(name)) - can
            grasp_z, _ = self._pick_heights(can)
            goal = np.array([can[0], can[1], hover_z if self.phase == "approach" else grasp_z])
            # Fingers across the can's body: the hand's x along the can's axis.
            step = expert.max_arm_step if self.phase == "approach" else expert.max_descend_step
            action, arrived = self._arm_towards(goal, step, gripper=0.0, yaw_to=math.atan2(axis[1], axis[0]))
            return self._next_if(arrived, "descend" if self.phase == "approach" else "close", action, immediate=True)
        if self.phase == "close":
            action = self._arm_action(np.zeros(6), gripper=1.0)
            return self._next_if(self.steps_in_phase + 1 >= expert.close_steps, "lift", action)
        if self.phase == "lift":
            target, rotation = sim.arm_target()
            action, arrived = self._arm_towards(np.array([target[0], target[1], table + expert.upright_lift]),
                                                expert.max_descend_step, gripper=1.0)
            if arrived:
                if not sim.is_grasped(name):
                    return self._next_if(True, "approach", self._arm_action(np.zeros(6), gripper=0.0))
                # A quarter turn about the closing axis: the hand's x (along the can) goes vertical and the hand
                # points along the can's former axis, forward (base +x), away from the robot.
                closing = rotation[:, 1]
                pointing = rotation[:, 0] * (1.0 if rotation[0, 0] >= 0 else -1.0)
                pointing = np.array([pointing[0], pointing[1], 0.0]) / np.linalg.norm(pointing[:2])
                self._goal_rotation = np.column_stack([np.cross(closing, pointing), closing, pointing])
                self._anchor = target.copy()
            return self._next_if(arrived, "turn", action, immediate=True)
        if self.phase == "turn":
            action, arrived = self._pose_towards(self._anchor, self._goal_rotation, expert.max_descend_step, 1.0)
            if arrived:
                self._anchor = np.array([self._anchor[0], self._anchor[1],
                                         table + self.config.cans.half_height + expert.upright_release])
            return self._next_if(arrived, "lower", action, immediate=True)
        if self.phase == "lower":
            action, arrived = self._pose_towards(self._anchor, self._goal_rotation, expert.max_descend_step, 1.0)
            return self._next_if(arrived, "release", action, immediate=True)
        if self.phase == "release":
            action = self._arm_action(np.zeros(6), gripper=0.0)
            if self.steps_in_phase + 1 >= expert.close_steps:
                self._anchor = self._anchor - self._goal_rotation[:, 2] * expert.upright_back_off
            return self._next_if(self.steps_in_phase + 1 >= expert.close_steps, "back_off", action)
        if self.phase == "back_off":
            action, arrived = self._pose_towards(self._anchor, self._goal_rotation, expert.max_descend_step, 0.0)
            return self._next_if(arrived, "retreat", action, immediate=True)
        if self.phase == "retreat":
            goal = np.array([self._anchor[0], self._anchor[1], hover_z])
            action, arrived = self._pose_towards(goal, self._goal_rotation, expert.max_arm_step, 0.0)
            lying = axis_tilt(sim.scene_state()) > math.pi / 4
            if arrived and lying:  # it fell back over: start again
                return self._next_if(True, "approach", action, immediate=True)
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=0.0)

    def _pose_towards(self, goal: np.ndarray, goal_rotation: np.ndarray, max_step: float,
                      gripper: float) -> tuple[np.ndarray, bool]:
        """Arm-mode action moving the target straight at ``goal`` and turning it towards ``goal_rotation`` (base
        frame, at most ``max_rotation_step`` a step); True once the target is there and the measured hand has
        settled on it, or ``turn_patience_steps`` after the target got there: a wrist holding a can sideways sags a
        little (up to ~0.15 rad and 1.5 cm) and never quite settles."""
        expert = self.config.expert
        target, rotation = self.sim.arm_target()
        offset = goal - target
        distance = float(np.linalg.norm(offset))
        step = offset if distance <= max_step else offset * (max_step / distance)
        turn = rotation_error(goal_rotation, rotation)
        angle = float(np.linalg.norm(turn))
        if angle > expert.max_rotation_step:
            turn *= expert.max_rotation_step / angle
        measured = self.sim.end_effector_position()
        measured_angle = float(np.linalg.norm(rotation_error(goal_rotation, self.sim.end_effector_rotation())))
        there = distance < expert.position_tolerance and angle < expert.max_rotation_step / 4
        self._steps_there = self._steps_there + 1 if there else 0
        settled = float(np.linalg.norm(measured - goal)) < expert.settle_tolerance and measured_angle < TURN_SETTLE_RAD
        arrived = there and (settled or self._steps_there > expert.turn_patience_steps)
        return self._arm_action(np.array([*step, *turn]), gripper), arrived

    # ------------------------------------------------------------------ receptacle families: place_into, pick_from
    def _receptacle_task(self) -> np.ndarray:
        expert, sim, task = self.config.expert, self.sim, self.task
        name = task.target_name
        geometry = receptacle_geometry(self.config, task.receptacle)
        world = sim.object_position(name)
        pose = sim.receptacle_pose(task.receptacle)
        in_receptacle = geometry.inside(pose, world)
        table_z = self.config.table.height
        support_z = table_z + geometry.floor_height if in_receptacle else table_z
        obj = sim.to_base_frame(world)
        grasp_z, hover_z = self._pick_heights(obj, support_z)
        if self.phase in ("approach", "descend", "close"):
            return self._grasp(obj, grasp_z, hover_z)
        if self.phase == "lift":
            goal = self._anchor + np.array([0.0, 0.0, expert.lift_height])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=1.0)
            if arrived and not sim.is_grasped(name):
                return self._next_if(True, "approach", self._arm_action(np.zeros(6), gripper=0.0))
            if arrived:
                self._anchor = self._carry_goal(world, goal)
            return self._next_if(arrived, "carry", action, immediate=True)
        if self.phase == "carry":
            action, arrived = self._arm_towards(self._anchor, expert.max_arm_step, gripper=1.0)
            if arrived:
                self._anchor = self._release_goal(geometry, obj)
            return self._next_if(arrived, "lower", action, immediate=True)
        if self.phase == "lower":
            action, arrived = self._arm_towards(self._anchor, expert.max_descend_step, gripper=1.0)
            return self._next_if(arrived, "release", action, immediate=True)
        if self.phase == "release":
            action = self._arm_action(np.zeros(6), gripper=0.0)
            return self._next_if(self.steps_in_phase + 1 >= expert.release_steps, "retreat", action)
        if self.phase == "retreat":
            goal = np.array([self._anchor[0], self._anchor[1], hover_z])
            action, arrived = self._arm_towards(goal, expert.max_arm_step, gripper=0.0)
            if arrived and not sim.success():
                return self._next_if(True, "approach", action, immediate=True)
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=0.0)

    def _carry_goal(self, world: np.ndarray, lifted: np.ndarray) -> np.ndarray:
        """Where the arm target goes, at the lifted height, so that the held object (now at ``world``) ends up over
        the put-down point: the receptacle's centre (place_into) or a free spot on the table (pick_from)."""
        sim, task = self.sim, self.task
        pose = sim.receptacle_pose(task.receptacle)
        if task.family == "place_into":
            point = np.array(pose[:2])
        else:
            others = [tuple(sim.object_position(p.spec.name)[:2]) for p in task.placements
                      if p.spec.name != task.target_name]
            spot = put_down_spot(self.config, self.config.tasks.family(task.family),
                                 receptacle_geometry(self.config, task.receptacle), pose, others, world[:2])
            point = np.array(spot if spot is not None else world[:2])  # no room: the check fails, it tries again
        target = sim.to_base_frame(np.array([*point, world[2]]))
        held_offset = lifted[:2] - sim.to_base_frame(world)[:2]  # where the object hangs relative to the target
        return np.array([target[0] + held_offset[0], target[1] + held_offset[1], lifted[2]])

    def _release_goal(self, geometry, obj: np.ndarray) -> np.ndarray:
        """The arm target that holds the object's bottom ``release_gap`` above the plate (place_into) or the table
        (pick_from), its pads clear of that surface."""
        config, expert = self.config, self.config.expert
        target, _ = self.sim.arm_target()
        surface = config.table.height + (geometry.floor_height if self.task.family == "place_into" else 0.0)
        bottom = obj[2] - object_half_height(config, self.task.target.shape)
        goal_z = target[2] - (bottom - (surface + expert.release_gap))
        lowest = surface + config.gripper.pad_half_extents[2] + expert.pad_table_clearance
        return np.array([target[0], target[1], max(goal_z, lowest)])

    # ------------------------------------------------------------------ drawer families
    def _drawer_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(out, side, grip rotation) in the base frame: the drawer's opening direction (unit, horizontal), the
        cabinet's +y, and the gripper pointing along -out (into the cabinet) with its fingers closing vertically,
        up or down as the commanded rotation already is (`_reach_rotation` chose which)."""
        _, _, cabinet_yaw = self.sim.cabinet_pose()
        heading = cabinet_yaw - self.sim.odometry().yaw
        out = np.array([math.cos(heading), math.sin(heading), 0.0])
        side = np.array([-math.sin(heading), math.cos(heading), 0.0])
        upward = self.sim.arm_target()[1][2, 1] >= 0.0
        return out, side, self._pointing_in(out, np.array([0.0, 0.0, 1.0 if upward else -1.0]))

    @staticmethod
    def _pointing_in(out: np.ndarray, closing: np.ndarray) -> np.ndarray:
        """Grip-site rotation (3, 3) pointing along -out with the fingers closing along ``closing``."""
        return np.stack([np.cross(closing, -out), closing, -out], axis=1)

    def _reach_rotation(self, out: np.ndarray) -> np.ndarray:
        """The rotation to turn towards while reaching: first pitch the downward gripper forward (its fingers still
        closing horizontally), then roll it about its approach axis until they close vertically, up or down,
        whichever leaves the wrist roll nearer the middle of its range. Turned in one go, the shortest way drives
        the forearm or the wrist roll into a limit, and the IK cannot get out."""
        target_rotation = self.sim.arm_target()[1]
        approach = target_rotation[:, 2]
        if float(approach @ -out) <= 0.95:
            closing = np.cross(np.array([0.0, 0.0, 1.0]), -out)  # horizontal; -base y when facing the cabinet
            return self._pointing_in(out, -closing if closing[1] > 0 else closing)
        wrist_roll = float(self.sim.joint_states().positions[ARM_JOINTS.index("wrist_roll")])
        best, best_end = None, math.inf
        for sign in (1.0, -1.0):
            rotation = self._pointing_in(out, np.array([0.0, 0.0, sign]))
            # Rolling the grip site by theta about its approach axis (the hand's -z) turns the wrist roll by -theta.
            theta = float(rotation_error(rotation, target_rotation) @ approach)
            if abs(wrist_roll - theta) < best_end:
                best, best_end = rotation, abs(wrist_roll - theta)
        return best

    def _closed_front(self, out: np.ndarray) -> np.ndarray:
        """Base-frame middle of the task's drawer front at handle height, as it is when closed."""
        handle = drawer_handle_world(self.config, self.task.cabinet, self.task.drawer, travel=0.0)
        return self.sim.to_base_frame(handle) - out * self.config.cabinet.handle_standoff

    def _open_drawer(self) -> np.ndarray:
        expert, sim = self.config.expert, self.sim
        out, _, grip = self._drawer_frame()
        handle = sim.to_base_frame(sim.object_position(self.task.target_name))
        grasp = handle + out * expert.drawer_grasp_offset
        if self.phase == "reach":
            goal = grasp + out * expert.drawer_approach_standoff
            action, arrived = self._arm_pose_towards(goal, self._reach_rotation(out), expert.max_arm_step,
                                                     gripper=0.0)
            return self._next_if(arrived, "insert", action, immediate=True)
        if self.phase == "insert":
            action, arrived = self._arm_pose_towards(grasp, grip, expert.max_descend_step, gripper=0.0)
            if arrived:
                self._anchor = grasp
            return self._next_if(arrived, "close", action, immediate=True)
        if self.phase == "close":
            action = self._arm_action(np.zeros(6), gripper=1.0)
            return self._next_if(self.steps_in_phase + 1 >= expert.close_steps, "pull", action)
        if self.phase == "pull":
            goal = self._anchor + out * expert.drawer_pull
            action, arrived = self._arm_pose_towards(goal, grip, expert.max_descend_step, gripper=1.0)
            if arrived:
                self._anchor = goal
            return self._next_if(arrived, "release", action, immediate=True)
        if self.phase == "release":
            action = self._arm_action(np.zeros(6), gripper=0.0)
            return self._next_if(self.steps_in_phase + 1 >= expert.drawer_release_steps, "back_off", action)
        if self.phase == "back_off":
            action, arrived = self._back_off(out, grip, gripper=0.0)
            if arrived and not sim.success():
                return self._next_if(True, "reach", action, immediate=True)
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=0.0)

    def _close_drawer(self) -> np.ndarray:
        expert, sim = self.config.expert, self.sim
        out, side, grip = self._drawer_frame()
        travel = sim.drawer_travel(self.task.drawer)
        closed = self._closed_front(out)
        # Push beside the handle, on the side nearer the arm's shoulder (less reach across the body).
        mount_y = self.config.arm.mount_position[1]
        sign = 1.0 if abs(closed[1] + side[1] * expert.drawer_push_offset - mount_y) \
            <= abs(closed[1] - side[1] * expert.drawer_push_offset - mount_y) else -1.0
        tips = self.config.gripper.pad_half_extents[2]  # grip site to the closed pads' tips
        contact = closed + side * sign * expert.drawer_push_offset + out * tips  # tips on the closed front
        if self.phase == "reach":
            goal = contact + out * (travel + expert.drawer_approach_standoff)
            action, arrived = self._arm_pose_towards(goal, self._reach_rotation(out), expert.max_arm_step,
                                                     gripper=1.0)
            return self._next_if(arrived, "push", action, immediate=True)
        if self.phase == "push":
            goal = contact - out * expert.drawer_push_overshoot
            action, arrived = self._arm_pose_towards(goal, grip, expert.max_descend_step, gripper=1.0)
            # Shut (by the joint's state) is as good as there: pressing on would only shove the base back.
            shut = travel < expert.drawer_shut_travel
            if arrived or shut:
                self._anchor = self.sim.arm_target()[0]
                action = self._arm_action(np.zeros(6), gripper=1.0) if shut and not arrived else action
            return self._next_if(arrived or shut, "back_off", action, immediate=True)
        if self.phase == "back_off":
            action, arrived = self._back_off(out, grip, gripper=1.0)
            if arrived and not sim.success():
                return self._next_if(True, "reach", action, immediate=True)
            return self._next_if(arrived, "done", action, immediate=True)
        return self._terminate(gripper=1.0)

    def _back_off(self, out: np.ndarray, grip: np.ndarray, gripper: float) -> tuple[np.ndarray, bool]:
        """Move the target ``drawer_back_off`` out from the anchor; True once it is there and the measured gripper
        has come at least half of that way (near a joint limit the arm may settle a centimetre off its target, which
        is no reason to stay)."""
        expert = self.config.expert
        goal = self._anchor + out * expert.drawer_back_off
        action, arrived = self._arm_pose_towards(goal, grip, expert.max_arm_step, gripper=gripper)
        target = self.sim.arm_target()[0]
        backed = float((self.sim.end_effector_position() - self._anchor) @ out) > expert.drawer_back_off / 2
        return action, arrived or (float(np.linalg.norm(goal - target)) < expert.position_tolerance and backed)

    def _arm_pose_towards(self, goal: np.ndarray, rotation_goal: np.ndarray, max_step: float,
                          gripper: float) -> tuple[np.ndarray, bool]:
        """Arm-mode action moving the target straight at ``goal`` and turning it towards ``rotation_goal`` (base
        frame, at most ``max_rotation_step`` per step); True once both are there and the arm has settled."""
        expert = self.config.expert
        target, rotation = self.sim.arm_target()
        offset = goal - target
        distance = float(np.linalg.norm(offset))
        step = offset if distance <= max_step else offset * (max_step / distance)
        turn = rotation_error(rotation_goal, rotation)  # rotation vector, base frame
        angle = float(np.linalg.norm(turn))
        if angle > expert.max_rotation_step:
            turn = turn * (expert.max_rotation_step / angle)
        measured = self.sim.end_effector_position()
        arrived = (distance < expert.position_tolerance and angle < expert.max_rotation_step / 4
                   and float(np.linalg.norm(measured - goal)) < expert.settle_tolerance)
        # Small-angle roll, pitch, yaw about the base axes: the simulator composes them into one rotation.
        return self._arm_action(np.array([*step, *turn]), gripper), arrived

    # ------------------------------------------------------------------ helpers
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
