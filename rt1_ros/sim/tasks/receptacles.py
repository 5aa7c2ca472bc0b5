"""The receptacle families: layouts and success of place_into and pick_from (the receptacles themselves:
`rt1_ros.sim.receptacles`).

* ``place_into`` "place the <colour> <object> into the <receptacle>": success while the object's centre is inside the
  receptacle's walls (inner footprint), above its bottom plate and below its wall top, the object not grasped and
  the gripper commanded open.
* ``pick_from`` "pick the <colour> <object> from the <receptacle> and place it on the table": the object starts
  inside the receptacle; success while it rests on the table top (centre height within ``rest_height_tolerance`` of
  lying there), its centre ``receptacle_clearance`` outside the receptacle's outer footprint, not grasped, gripper open.

They draw the receptacle (kind and pose) first, then the objects clear of it, from the same generator; the other
families never draw for a receptacle, so their layouts are what they were before receptacles existed.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import SimConfig, TaskFamilyConfig
from rt1_ros.sim.receptacles import ReceptacleGeometry, receptacle_geometries, receptacle_geometry
from rt1_ros.sim.scene import object_half_height
from rt1_ros.sim.tasks.base import (ObjectPlacement, SceneState, Task, sample_placements, sample_start_pose,
                                    word_instruction)

RECEPTACLE_FAMILIES = ("place_into", "pick_from")


def sample_receptacle_task(config: SimConfig, family: TaskFamilyConfig, seed: int, rng: np.random.Generator,
                           condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """place_into / pick_from: a receptacle, the objects clear of it, and for pick_from the target moved inside."""
    receptacles = config.receptacles
    geometries = receptacle_geometries(config)
    geometry = geometries[rng.integers(len(geometries))]
    pose = (float(rng.uniform(*receptacles.region_x)), float(rng.uniform(*receptacles.region_y)),
            float(rng.uniform(-receptacles.max_yaw, receptacles.max_yaw)))
    placements = sample_placements(
        config, object_count, rng,
        keep_out=lambda x, y: geometry.distance_outside(pose, (x, y)) < receptacles.object_clearance)
    if placements is None:
        return None
    held_out = set(config.tasks.held_out_pairs)
    wants_held_out = condition.targets == "held_out"
    candidates = [p for p in placements if (f"{family.name}:{p.spec.name}" in held_out) == wants_held_out]
    if family.name == "place_into":
        candidates = [p for p in candidates if abs(p.y) <= family.target_max_abs_y]
    if not candidates:
        return None
    target = candidates[rng.integers(len(candidates))]
    if family.name == "pick_from":
        offset = rng.uniform(-receptacles.start_offset, receptacles.start_offset, size=2)
        c, s = math.cos(pose[2]), math.sin(pose[2])
        x, y = pose[0] + c * offset[0] - s * offset[1], pose[1] + s * offset[0] + c * offset[1]
        if abs(y) > family.target_max_abs_y:
            return None
        inside = ObjectPlacement(target.spec, x, y, target.yaw, support_height=geometry.floor_height)
        placements = [inside if p is target else p for p in placements]
        target = inside
        others = [(p.x, p.y) for p in placements if p is not target]
        if put_down_spot(config, family, geometry, pose, others, (x, y)) is None:
            return None
    return Task(
        family=family.name,
        instruction=word_instruction(config, family, condition, target.spec, None, words,
                                     receptacle=geometry.name),
        seed=seed,
        target=target.spec,
        direction=None,
        base_start=sample_start_pose(family, rng),
        placements=tuple(placements),
        condition=condition.name,
        receptacle=geometry.name,
        receptacle_pose=pose,
    )


def put_down_spot(config: SimConfig, family: TaskFamilyConfig, geometry: ReceptacleGeometry,
                  pose: tuple[float, float, float], others, near) -> tuple[float, float] | None:
    """pick_from: where to set the object down (world x, y): the spot of a grid over the objects' region (within the
    family's reach) nearest to ``near`` that is ``receptacle_clearance + spot_margin`` outside the receptacle and
    ``objects.min_separation`` from each of ``others`` (x, y); None when there is none."""
    objects, expert = config.objects, config.expert
    clearance = config.tasks.receptacle_clearance + expert.spot_margin
    reach = family.target_max_abs_y
    low_y, high_y = max(objects.region_y[0], -reach), min(objects.region_y[1], reach)
    xs = np.arange(objects.region_x[0], objects.region_x[1] + 1e-9, expert.spot_grid_step)
    ys = np.arange(low_y, high_y + 1e-9, expert.spot_grid_step)
    best, best_distance = None, math.inf
    for x in xs:
        for y in ys:
            if geometry.distance_outside(pose, (x, y)) < clearance:
                continue
            if any(math.hypot(x - ox, y - oy) < objects.min_separation for ox, oy in others):
                continue
            distance = math.hypot(x - near[0], y - near[1])
            if distance < best_distance:
                best, best_distance = (float(x), float(y)), distance
    return best


def receptacle_success(config: SimConfig, task: Task, state: SceneState) -> bool:
    geometry = receptacle_geometry(config, task.receptacle)
    position = state.object_position
    released = not state.grasped and state.gripper_open
    table = config.table
    if task.family == "place_into":
        floor = table.height + geometry.floor_height
        return bool(released and geometry.inside(state.receptacle_pose, position)
                    and floor < position[2] < table.height + geometry.wall_top)
    resting = table.height + object_half_height(config, task.target.shape)
    on_table = all(abs(position[i] - table.center[i]) < table.half_extents[i] for i in range(2))
    clear = geometry.distance_outside(state.receptacle_pose, position) > config.tasks.receptacle_clearance
    return bool(released and on_table and clear and abs(position[2] - resting) < config.tasks.rest_height_tolerance)
