"""The tabletop families' expert phases (pick, push, move_near), mixed into `core.ScriptedExpert`.

* pick:      approach (hover over the object, open, yaw-aligned to a cube face) -> descend -> close -> lift ->
             terminate. If the lift ends without a grasp, it reopens and approaches again.
* push:      approach (closed gripper, hover beside the object on the side opposite the push) -> descend ->
             push (sideways through the object) -> retreat (up) -> terminate; retries like pick.
* move_near: drive (holonomic, straight to a parking pose in front of the object facing the table) -> terminate.

pick and push are the families whose phases ``follow_state`` can also recognise from the state (DAgger labelling):
:meth:`TabletopPhases._follow_pick`, :meth:`TabletopPhases._follow_push`.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.configuration.action_layout import BASE_DIMS
from rt1_ros.sim.scene import object_half_width

GRASP_REACH_M = 0.02  # follow_state: a gripper closed this near the grasp pose is closing on the object


def wrap_angle(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class TabletopPhases:
    """pick, push and move_near; the motion helpers they call (``_arm_towards``, ``_next_if``, ...) are
    `core.ScriptedExpert`'s."""

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
            return self._retreat(hover_z, expert.max_arm_step, gripper=1.0)
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
