"""The receptacle families' expert phases (place_into, pick_from, place_into_drawer), mixed into
`core.ScriptedExpert`.

* place_into, pick_from: pick's approach -> descend -> close, with the grasp height taken over the receptacle's
             bottom plate when the object is in it -> lift (reopens and approaches again without a grasp) -> carry
             (at the lifted height, to above the receptacle's centre, or to a free spot on the table:
             `rt1_ros.sim.tasks.receptacles.put_down_spot`) -> lower (the object's bottom ``release_gap`` above the
             plate or the table) -> release (open) -> retreat (up) -> terminate; approaches again if the check fails
             then.
* place_into_drawer: the same phases around the cabinet. The approach first steps sideways, in front of the open
             drawer, until the hand is beside the cabinet; the carry comes out beside the cabinet to the middle of
             the drawer's inside in front of the carcass, rises beside it until the object's bottom is
             ``drawer_carry_clearance`` over the drawer front's top, then moves across over the drawer (stopping
             ``drawer_drop_offset`` short of its middle); lower puts the object's bottom ``release_gap`` above the
             drawer's bottom; retreat rises to the carrying height.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.cabinet import drawer_interior, slot_bottom
from rt1_ros.sim.receptacles import receptacle_geometry
from rt1_ros.sim.scene import object_half_height
from rt1_ros.sim.tasks.drawers import PLACE_INTO_DRAWER, in_drawer
from rt1_ros.sim.tasks.receptacles import put_down_spot


class ReceptaclePhases:
    """place_into, pick_from and place_into_drawer; the grasp (``_grasp``, ``_pick_heights``) and the motion helpers
    they call are `core.ScriptedExpert`'s."""

    def _receptacle_task(self) -> np.ndarray:
        expert, sim, task = self.config.expert, self.sim, self.task
        name = task.target_name
        world = sim.object_position(name)
        support_z = self._support_height(world)
        obj = sim.to_base_frame(world)
        grasp_z, hover_z = self._pick_heights(obj, support_z)
        if self.phase == "approach" and task.family == PLACE_INTO_DRAWER:
            sidestep = self._sidestep_goal(world, hover_z)
            if sidestep is not None:
                action, _ = self._arm_towards(sidestep, expert.max_arm_step, gripper=0.0)
                return action
        if self.phase in ("approach", "descend", "close"):
            return self._grasp(obj, grasp_z, hover_z)
        if self.phase == "lift":
            goal = self._anchor + np.array([0.0, 0.0, expert.lift_height])
            action, arrived = self._arm_towards(goal, expert.max_descend_step, gripper=1.0)
            if arrived and not sim.is_grasped(name):
                return self._next_if(True, "approach", self._arm_action(np.zeros(6), gripper=0.0))
            if arrived:
                self._carry_path = self._carry_waypoints(world, goal)
                self._anchor = self._carry_path.pop(0)
            return self._next_if(arrived, "carry", action, immediate=True)
        if self.phase == "carry":
            action, arrived = self._arm_towards(self._anchor, expert.max_arm_step, gripper=1.0)
            if arrived and self._carry_path:
                self._anchor = self._carry_path.pop(0)
                return self._next_if(True, "carry", action, immediate=True)
            if arrived:
                self._carry_height = self._anchor[2]
                self._anchor = self._release_goal(obj)
            return self._next_if(arrived, "lower", action, immediate=True)
        if self.phase in ("lower", "release"):
            return self._lower_then_release(expert.release_steps)
        if self.phase == "retreat":
            up = max(hover_z, self._carry_height) if task.family == PLACE_INTO_DRAWER else hover_z
            return self._retreat(up, expert.max_arm_step, gripper=0.0)
        return self._terminate(gripper=0.0)

    def _support_height(self, world: np.ndarray) -> float:
        """World z of what the object at ``world`` stands on: the receptacle's plate or the drawer's bottom when it
        is in one, else the table top."""
        config, task = self.config, self.task
        table_z = config.table.height
        if task.family == PLACE_INTO_DRAWER:
            travel = self.sim.drawer_travel(task.drawer)
            return self._drawer_floor() if in_drawer(config, task.cabinet, task.drawer, travel, world) else table_z
        geometry = receptacle_geometry(config, task.receptacle)
        inside = geometry.inside(self.sim.receptacle_pose(task.receptacle), world)
        return table_z + geometry.floor_height if inside else table_z

    def _carry_waypoints(self, world: np.ndarray, lifted: np.ndarray) -> list[np.ndarray]:
        """The arm target's waypoints (base frame) that take the held object (now at ``world``, the target at
        ``lifted``) to above its put-down point: the receptacle's centre (place_into), a free spot on the table
        (pick_from), or the middle of the open drawer's inside in front of the carcass (place_into_drawer, by the way
        round the cabinet `_drawer_carry_points` gives)."""
        sim, task = self.sim, self.task
        held_offset = lifted - sim.to_base_frame(world)  # where the target is relative to the object's centre
        if task.family == PLACE_INTO_DRAWER:
            return [sim.to_base_frame(point) + held_offset for point in self._drawer_carry_points(world)]
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
        return [np.array([target[0] + held_offset[0], target[1] + held_offset[1], lifted[2]])]

    def _drawer_carry_points(self, world: np.ndarray) -> list[np.ndarray]:
        """World points for the held object's centre: out beside the cabinet to the drawer's middle line, up to the
        carrying height just beside the cabinet (the arm reaches high only nearer its mount), then across over the
        drawer to ``drawer_drop_offset`` short of its middle."""
        config, task = self.config, self.task
        cabinet = config.cabinet
        index = cabinet.drawers.index(task.drawer)
        half_height = object_half_height(config, task.target.shape)
        front_top = config.table.height + slot_bottom(cabinet, index) + cabinet.slot_height - cabinet.clearance
        centre_z = max(float(world[2]), front_top + config.expert.drawer_carry_clearance + half_height)
        travel = self.sim.drawer_travel(task.drawer)
        drop_x = (travel - cabinet.front_thickness) / 2  # cabinet frame: the inside in front of the carcass
        placement = task.cabinet
        _, side_y = placement.to_cabinet(world[0], world[1])  # the object's cabinet-frame y
        beside_y = math.copysign(self._beside_cabinet_y(), side_y)

        def to_world(x: float, y: float, z: float) -> np.ndarray:
            return np.array([*placement.to_world(x, y), z])

        drop_y = math.copysign(config.expert.drawer_drop_offset, side_y)  # off the middle, nearer the arm's reach
        return [to_world(drop_x, side_y, float(world[2])), to_world(drop_x, beside_y, centre_z),
                to_world(drop_x, drop_y, centre_z)]

    def _sidestep_goal(self, world: np.ndarray, hover_z: float) -> np.ndarray | None:
        """place_into_drawer's approach: while the arm target is in front of the cabinet (within its half width and
        the clearance beside it), the goal beside it at the object's cabinet-frame y, keeping the target's distance
        from the front; None once it is beside the cabinet."""
        sim, placement = self.sim, self.task.cabinet
        target_world = sim.to_world_frame(sim.arm_target()[0])
        target_x, target_y = placement.to_cabinet(target_world[0], target_world[1])
        _, object_y = placement.to_cabinet(world[0], world[1])
        if abs(target_y) >= self._beside_cabinet_y() or \
                abs(target_y - object_y) < self.config.expert.position_tolerance:
            return None
        goal = sim.to_base_frame(np.array([*placement.to_world(target_x, object_y), 0.0]))
        return np.array([goal[0], goal[1], hover_z])

    def _beside_cabinet_y(self) -> float:
        """place_into_drawer: |cabinet-frame y| from which the hand is beside the cabinet (half its width and half
        the objects' clearance beside it), where it may rise or come down."""
        return self.config.cabinet.width / 2 + self.config.tasks.drawer_object_clearance / 2

    def _drawer_floor(self) -> float:
        """place_into_drawer: world z of the task's drawer's bottom (its top face)."""
        config = self.config
        index = config.cabinet.drawers.index(self.task.drawer)
        return config.table.height + drawer_interior(config.cabinet, index).z[0]

    def _release_goal(self, obj: np.ndarray) -> np.ndarray:
        """The arm target that holds the object's bottom ``release_gap`` above the plate (place_into), the drawer's
        bottom (place_into_drawer) or the table (pick_from), its pads clear of that surface."""
        config, expert, task = self.config, self.config.expert, self.task
        target, _ = self.sim.arm_target()
        if task.family == PLACE_INTO_DRAWER:
            surface = self._drawer_floor()
        elif task.family == "place_into":
            surface = config.table.height + receptacle_geometry(config, task.receptacle).floor_height
        else:
            surface = config.table.height
        bottom = obj[2] - object_half_height(config, task.target.shape)
        goal_z = target[2] - (bottom - (surface + expert.release_gap))
        lowest = surface + config.gripper.pad_half_extents[2] + expert.pad_table_clearance
        return np.array([target[0], target[1], max(goal_z, lowest)])
