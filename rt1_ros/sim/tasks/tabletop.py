"""The tabletop families: layouts and success of pick, push and move_near (the cubes and cylinders only).

* ``pick``      "pick up the <colour> <object>": success while the object is held between both finger pads and its
  centre is ``lift_margin`` above where it rested after the reset.
* ``move_near`` "move near the <colour> <object>": success while the base centre is within ``near_distance``
  (horizontal) of the object. The base starts far enough back that this is false at reset.
* ``push``      "push the <colour> <object> left|right": success while the object is displaced by ``push_margin`` along
  the base's +y (left) or -y (right) axis as it was at reset, and still rests on the table. The layout keeps the
  push corridor clear.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import SimConfig
from rt1_ros.sim.scene import object_half_width
from rt1_ros.sim.tasks.base import (ObjectPlacement, SceneState, Task, sample_placements, sample_start_pose,
                                    word_instruction)

TABLETOP_FAMILIES = ("pick", "push", "move_near")
PUSH_DIRECTIONS = ("left", "right")


def sample_tabletop_task(config: SimConfig, family_name: str, seed: int, rng: np.random.Generator,
                         condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """A layout of pick, push or move_near: the cubes and cylinders, a target within the family's reach and, for
    push, a direction whose corridor is clear."""
    family = config.tasks.family(family_name)
    placements = sample_placements(config, object_count, rng)
    if placements is None:
        return None
    held_out = set(config.tasks.held_out_pairs)
    wants_held_out = condition.targets == "held_out"
    candidates = [p for p in placements if abs(p.y) <= family.target_max_abs_y
                  and (f"{family_name}:{p.spec.name}" in held_out) == wants_held_out]
    if not candidates:
        return None
    target = candidates[rng.integers(len(candidates))]
    direction = None
    if family_name == "push":
        direction = PUSH_DIRECTIONS[rng.integers(len(PUSH_DIRECTIONS))]
        if not _push_corridor_clear(config, placements, target, direction):
            return None
    base_start = sample_start_pose(family, rng)
    return Task(
        family=family_name,
        instruction=word_instruction(config, family, condition, target.spec, direction, words),
        seed=seed,
        target=target.spec,
        direction=direction,
        base_start=base_start,
        placements=tuple(placements),
        condition=condition.name,
    )


def tabletop_success(config: SimConfig, task: Task, state: SceneState) -> bool:
    tasks = config.tasks
    if task.family == "pick":
        lifted = state.object_position[2] - state.object_rest_position[2]
        return bool(state.grasped and lifted > tasks.lift_margin)
    if task.family == "move_near":
        bx, by, _ = state.base_pose
        distance = math.hypot(state.object_position[0] - bx, state.object_position[1] - by)
        return bool(distance < tasks.near_distance)
    # push. bool(): numpy comparisons give numpy booleans, which JSON (episode.json, reports) refuses.
    return bool(push_displacement(task, state) > tasks.push_margin and state.object_position[2] > config.table.height)


def push_displacement(task: Task, state: SceneState) -> float:
    """Displacement of the target along the push direction, in the base frame the episode started in (m)."""
    delta = state.object_position[:2] - state.object_rest_position[:2]
    yaw = state.reset_base_yaw
    lateral = -math.sin(yaw) * delta[0] + math.cos(yaw) * delta[1]  # base +y component
    return float(lateral if task.direction == "left" else -lateral)


def _push_corridor_clear(
    config: SimConfig, placements: list[ObjectPlacement], target: ObjectPlacement, direction: str
) -> bool:
    """No other object where the fingers come down beside the target or where the target slides to."""
    sign = 1.0 if direction == "left" else -1.0
    expert, tasks = config.expert, config.tasks
    reach_back = (
        object_half_width(config, target.spec.shape)
        + expert.push_clearance
        + 2 * config.gripper.pad_half_extents[1]
        + tasks.push_corridor_half_width
    )
    reach_forward = tasks.push_margin + expert.push_overshoot + tasks.push_corridor_half_width
    table_edge = config.table.center[1] + sign * config.table.half_extents[1]
    if sign * (target.y + sign * (reach_forward - tasks.push_corridor_half_width) - table_edge) > 0:
        return False
    for other in placements:
        if other is target:
            continue
        along = sign * (other.y - target.y)
        if abs(other.x - target.x) < tasks.push_corridor_half_width and -reach_back < along < reach_forward:
            return False
    return True
