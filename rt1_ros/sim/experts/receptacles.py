"""The receptacle families' expert phases (place_into, pick_from), mixed into `core.ScriptedExpert`.

* place_into, pick_from: pick's approach -> descend -> close, with the grasp height taken over the receptacle's
             bottom plate when the object is in it -> lift (reopens and approaches again without a grasp) -> carry
             (at the lifted height, to above the receptacle's centre, or to a free spot on the table:
             `rt1_ros.sim.tasks.receptacles.put_down_spot`) -> lower (the object's bottom ``release_gap`` above the
             plate or the table) -> release (open) -> retreat (up) -> terminate; approaches again if the check fails
             then.
"""
from __future__ import annotations

import numpy as np

from rt1_ros.sim.receptacles import receptacle_geometry
from rt1_ros.sim.scene import object_half_height
from rt1_ros.sim.tasks.receptacles import put_down_spot


class ReceptaclePhases:
    """place_into and pick_from; the grasp (``_grasp``, ``_pick_heights``) and the motion helpers they call are
    `core.ScriptedExpert`'s."""

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
