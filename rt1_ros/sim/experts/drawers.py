"""The drawer families' expert phases (open_drawer, close_drawer), mixed into `core.ScriptedExpert`.

* open_drawer:  reach (open gripper turned to point into the cabinet along the drawer's axis, the fingers closing
             vertically, ``drawer_approach_standoff`` in front of the handle) -> insert (the bar between the
             fingers) -> close -> pull (along the drawer's axis) -> release (open) -> back_off -> terminate. The
             handles stack vertically, so they are approached from the front, never from above. If the drawer is not
             open enough after backing off, it reaches again.
* close_drawer: reach (closed gripper pointing into the cabinet, in front of the open drawer's front beside its
             handle) -> push (to the closed position and a little past; the joint's stop holds the drawer) ->
             back_off -> terminate; reaches again if the drawer is still open.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.mobile_manipulator import rotation_error
from rt1_ros.sim.scene import ARM_JOINTS
from rt1_ros.sim.tasks.drawers import drawer_handle_world


class DrawerPhases:
    """open_drawer and close_drawer, with the arm moves that turn the hand as well (``_arm_pose_towards``); the
    other motion helpers they call (``_arm_action``, ``_next_if``, ...) are `core.ScriptedExpert`'s."""

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
