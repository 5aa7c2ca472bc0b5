"""The object families: layouts and success of move_object_near, knock_over and place_upright, whose scenes may
hold cans (``cans.families``; standing unless said otherwise).

* ``move_object_near`` "move the <colour> <object> near the <colour> <object>": the arm carries the target (a cube
  or cylinder) to the reference (``Task.reference``, any object). Success while the target rests on the table (not
  grasped, gripper open, its centre within ``rest_height_tolerance`` of its resting height), its centre within
  ``object_near_distance`` (horizontal) of the reference's, and the reference moved less than
  ``reference_moved_tolerance`` from where it rested. The layout leaves room beside the reference on the target's
  side (the expert's drop spot, :func:`place_spot`).
* ``knock_over`` "knock the <colour> can over": success while the can's axis is more than ``knocked_over_tilt``
  from vertical, it is on the table, and nothing of the robot touches it. The layout keeps the push line behind the
  can and its fall line in front (world +x, away from the robot) clear.
* ``place_upright`` "stand the <colour> can up": the can starts lying on its side. Success while its axis is
  within ``upright_tilt`` of vertical, it stands on the table (its centre within ``rest_height_tolerance`` of a
  standing can's height), not grasped and with the gripper open. No other object within ``upright_clearance``.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import SimConfig
from rt1_ros.sim.scene import CAN_SHAPE, all_object_specs
from rt1_ros.sim.tasks.base import (ObjectPlacement, SceneState, Task, sample_placements, sample_start_pose,
                                    word_instruction)

OBJECT_FAMILIES = ("move_object_near", "knock_over", "place_upright")


def sample_object_task(config: SimConfig, family_name: str, seed: int, rng: np.random.Generator,
                       condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """A layout of one of the object families: cans stand among the cubes and cylinders (place_upright's target
    lies), the target fits the family, and the room the expert needs is clear."""
    family = config.tasks.family(family_name)
    placements = sample_placements(config, object_count, rng, all_object_specs(config))
    if placements is None:
        return None
    held_out = set(config.tasks.held_out_pairs)
    wants_held_out = condition.targets == "held_out"
    wants_can = family_name != "move_object_near"
    candidates = [p for p in placements if abs(p.y) <= family.target_max_abs_y
                  and (p.spec.shape == CAN_SHAPE) == wants_can
                  and (f"{family_name}:{p.spec.name}" in held_out) == wants_held_out]
    if not candidates:
        return None
    target = candidates[rng.integers(len(candidates))]
    reference = None
    if family_name == "move_object_near":
        others = [p for p in placements if p is not target]
        reference = others[rng.integers(len(others))]
        spot = place_spot(config, np.array([target.x, target.y]), np.array([reference.x, reference.y]))
        if spot is None or any(math.hypot(p.x - spot[0], p.y - spot[1]) < config.tasks.place_spot_clearance
                               for p in others if p is not reference):
            return None
    elif family_name == "knock_over":
        if not _knock_corridor_clear(config, placements, target):
            return None
    else:  # place_upright: the target lies on its side, with room around it to be stood up
        yaw = rng.uniform(-config.cans.lying_max_yaw, config.cans.lying_max_yaw)
        target_index = placements.index(target)
        target = ObjectPlacement(target.spec, target.x, target.y, yaw, lying=True)
        placements[target_index] = target
        if any(math.hypot(p.x - target.x, p.y - target.y) < config.tasks.upright_clearance
               for p in placements if p is not target):
            return None
    base_start = sample_start_pose(family, rng)
    return Task(
        family=family_name,
        instruction=word_instruction(config, family, condition, target.spec, None, words,
                                     reference.spec if reference else None),
        seed=seed,
        target=target.spec,
        direction=None,
        base_start=base_start,
        placements=tuple(placements),
        condition=condition.name,
        reference=reference.spec if reference else None,
    )


def place_spot(config: SimConfig, target: np.ndarray, reference: np.ndarray) -> np.ndarray | None:
    """move_object_near: where the expert sets the target down, world (x, y): ``expert.place_distance`` from the
    reference (world (x, y)) towards the target (world (x, y), where it rests). None when that is outside the
    region objects are sampled in (in x, give or take ``place_distance``) or farther to a side than the family's
    targets may be (``target_max_abs_y``: the arm's reach)."""
    away = np.asarray(target, dtype=float) - np.asarray(reference, dtype=float)
    spot = np.asarray(reference, dtype=float) + away / np.linalg.norm(away) * config.expert.place_distance
    objects = config.objects
    margin = config.expert.place_distance
    if not (objects.region_x[0] - margin <= spot[0] <= objects.region_x[1] + margin
            and abs(spot[1]) <= config.tasks.family("move_object_near").target_max_abs_y):
        return None
    return spot


def _knock_corridor_clear(config: SimConfig, placements: list[ObjectPlacement], target: ObjectPlacement) -> bool:
    """No other object where the closed fingers come down behind the can (world -x, towards the robot) or where
    the can falls (world +x)."""
    expert, tasks = config.expert, config.tasks
    reach_back = (config.cans.radius + expert.knock_clearance + 2 * config.gripper.pad_half_extents[1]
                  + tasks.knock_corridor_half_width)
    for other in placements:
        if other is target:
            continue
        along = other.x - target.x
        if abs(other.y - target.y) < tasks.knock_corridor_half_width and -reach_back < along < tasks.knock_fall_length:
            return False
    return True


def object_family_success(config: SimConfig, task: Task, state: SceneState) -> bool:
    tasks = config.tasks
    if task.family == "move_object_near":
        return bool(object_placed_near(config, state) and reference_moved(state) < tasks.reference_moved_tolerance)
    if task.family == "knock_over":
        return bool(axis_tilt(state) > tasks.knocked_over_tilt and state.object_position[2] > config.table.height
                    and not state.gripper_touching)
    # place_upright
    standing_z = config.table.height + config.cans.half_height
    return bool(axis_tilt(state) < tasks.upright_tilt and not state.grasped and state.gripper_open
                and abs(state.object_position[2] - standing_z) < tasks.rest_height_tolerance)


def object_placed_near(config: SimConfig, state: SceneState) -> bool:
    """move_object_near without the reference's check: the target let go of, resting on the table near the
    reference."""
    tasks = config.tasks
    distance = float(np.linalg.norm(state.object_position[:2] - state.reference_position[:2]))
    resting = abs(state.object_position[2] - state.object_rest_position[2]) < tasks.rest_height_tolerance
    return bool(distance < tasks.object_near_distance and resting and not state.grasped and state.gripper_open)


def reference_moved(state: SceneState) -> float:
    """How far (horizontal, m) the reference moved from where it rested after the reset."""
    return float(np.linalg.norm(state.reference_position[:2] - state.reference_rest_position[:2]))


def axis_tilt(state: SceneState) -> float:
    """Angle (rad) between the target's own z axis (a can's axis) and the vertical, 0 to pi/2 (a can has two
    ends)."""
    return math.acos(min(1.0, abs(float(state.object_up[2])) / float(np.linalg.norm(state.object_up))))
