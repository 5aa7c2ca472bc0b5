"""The object families' expert phases (move_object_near, knock_over, place_upright), mixed into
`core.ScriptedExpert`. They travel at ``tall_hover_height`` (over standing cans):

* move_object_near: approach -> descend -> close -> lift (pick's, yaw-aligned to a cube face) -> carry (to the drop
             spot beside the reference on the target's side, `rt1_ros.sim.tasks.objects.place_spot`, turning the
             fingers' closing axis across the line to the reference so no finger comes between) -> lower -> release
             -> retreat (up) -> terminate. Nothing held after the lift: approach again; not placed after the retreat:
             pick it again.
* knock_over: approach (closed gripper, closing axis along base x, over a point behind the can) -> descend (the
             pads' centre ``knock_height`` under the can's top) -> push (base +x, through where the can stood) ->
             back_off (base -x) -> retreat (up) -> terminate; not knocked over after the retreat: approach again.
* place_upright: approach (open, pointing down, the closing axis across the lying can) -> descend -> close ->
             lift -> turn (a quarter turn about the closing axis: the can's axis vertical, the hand pointing forward)
             -> lower (until the can's bottom is ``upright_release`` over the table) -> release -> back_off (the open
             hand slides back off the can) -> retreat (up) -> terminate.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.mobile_manipulator import rotation_error
from rt1_ros.sim.scene import object_half_height
from rt1_ros.sim.tasks.objects import axis_tilt, place_spot

TURN_SETTLE_RAD = 0.05  # the measured hand is within this of the commanded orientation before a turn counts as done


class ObjectFamilyPhases:
    """move_object_near, knock_over and place_upright; the motion helpers they call (``_arm_towards``,
    ``_pick_heights``, ``_next_if``, ...) are `core.ScriptedExpert`'s."""

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
        if self.phase in ("lower", "release"):
            return self._lower_then_release(expert.close_steps)
        if self.phase == "retreat":
            return self._retreat(hover_z, expert.max_descend_step, gripper=0.0)
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
            return self._retreat(hover_z, expert.max_arm_step, gripper=1.0)
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
