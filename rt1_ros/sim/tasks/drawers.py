"""The drawer families: layouts and success of open_drawer and close_drawer (the cabinet itself:
`rt1_ros.sim.cabinet`; the family names: ``config.DRAWER_FAMILIES``).

* ``open_drawer``  "open the top|middle|bottom drawer" of the cabinet (all drawers closed at reset): success while
  that drawer is open by more than ``drawer_open_fraction`` of its travel, the fingers are at least
  ``drawer_released_opening`` apart and no part of the arm touches the cabinet (the handle was let go).
* ``close_drawer`` "close the top|middle|bottom drawer" (that drawer starts ``drawer_start_open`` of its travel
  open, the others closed): success while it is open by less than ``drawer_closed_fraction`` of its travel and no
  part of the arm touches the cabinet.

* ``place_into_drawer`` "place the <colour> <object> into the top|middle drawer" (that drawer starts
  ``place_drawer_open`` of its travel open, the others closed; ``tasks.place_drawers`` lists the drawers it asks
  for): success while the object's centre is inside the drawer's box (between its walls' inner faces, above its
  bottom, below its walls' top: `cabinet.DrawerInterior`), the object not grasped and the gripper commanded open.

A drawer task's ``target`` is the drawer's handle (`cabinet.DrawerHandleSpec`, a body the recorder and the
visibility check read like an object), ``drawer`` names the drawer and ``cabinet`` says where the cabinet stands;
the objects on the table are distractors kept clear of the cabinet. place_into_drawer's target is an object on the
table beside the cabinet, and ``drawer`` the drawer it goes into.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.cabinet import drawer_interior, handle_position, handle_spec
from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import SimConfig, TaskFamilyConfig
from rt1_ros.sim.tasks.base import (CabinetPlacement, ObjectPlacement, SceneState, Task, sample_placements,
                                    sample_start_pose, word_instruction)

PLACE_INTO_DRAWER = "place_into_drawer"


def sample_drawer_task(config: SimConfig, family: TaskFamilyConfig, seed: int, rng: np.random.Generator,
                       condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """A cabinet on the table with ``family``'s drawer as the target; the objects drawn as for the other families,
    less those where the cabinet stands or the arm reaches for it (the band of world y in front of it)."""
    cabinet, tasks = config.cabinet, config.tasks
    placements = sample_placements(config, object_count, rng)
    if placements is None:
        return None
    front_x, front_y, yaw = _cabinet_pose(config, rng)
    held_out = set(tasks.held_out_pairs)
    wants_held_out = condition.targets == "held_out"
    candidates = [d for d in cabinet.drawers
                  if (f"{family.name}:{handle_spec(config, d).name}" in held_out) == wants_held_out]
    if not candidates:
        return None
    drawer = candidates[rng.integers(len(candidates))]
    travel = [0.0] * len(cabinet.drawers)
    if family.name == "close_drawer":
        travel[cabinet.drawers.index(drawer)] = float(rng.uniform(*tasks.drawer_start_open) * cabinet.travel)
    base_start = sample_start_pose(family, rng)
    placement = CabinetPlacement(front_x, front_y, yaw, tuple(travel))
    handle = drawer_handle_world(config, placement, drawer)
    if abs(handle[1]) > family.target_max_abs_y:
        return None
    kept = _beside_cabinet(config, placements, placement)
    templates = family.templates if condition.instructions == "training" else family.unseen_templates
    template = templates[words.integers(len(templates))]
    return Task(
        family=family.name,
        instruction=fill_drawer_template(template, drawer),
        seed=seed,
        target=handle_spec(config, drawer),
        direction=None,
        base_start=base_start,
        placements=kept,
        condition=condition.name,
        drawer=drawer,
        cabinet=placement,
    )


def sample_place_into_drawer_task(config: SimConfig, family: TaskFamilyConfig, seed: int, rng: np.random.Generator,
                                  condition: ConditionConfig, object_count: int,
                                  words: np.random.Generator) -> Task | None:
    """place_into_drawer: the cabinet as for the drawer families but on the arm's far side (``place_cabinet_y``: the
    arm, mounted on the right, never reaches across it), one of ``tasks.place_drawers`` open, and a target among
    the objects beside it within the arm's reach (``target_max_abs_y``, ``place_target_max_x``)."""
    cabinet, tasks = config.cabinet, config.tasks
    placements = sample_placements(config, object_count, rng)
    if placements is None:
        return None
    front_x, front_y, yaw = _cabinet_pose(config, rng, tasks.place_cabinet_y)
    drawer = tasks.place_drawers[rng.integers(len(tasks.place_drawers))]
    travel = [0.0] * len(cabinet.drawers)
    travel[cabinet.drawers.index(drawer)] = float(rng.uniform(*tasks.place_drawer_open) * cabinet.travel)
    base_start = sample_start_pose(family, rng)
    placement = CabinetPlacement(front_x, front_y, yaw, tuple(travel))
    kept = _beside_cabinet(config, placements, placement)
    held_out = set(tasks.held_out_pairs)
    wants_held_out = condition.targets == "held_out"
    candidates = [p for p in kept if (f"{family.name}:{p.spec.name}" in held_out) == wants_held_out
                  and abs(p.y) <= family.target_max_abs_y and p.x <= tasks.place_target_max_x]
    if not candidates:
        return None
    target = candidates[rng.integers(len(candidates))]
    return Task(
        family=family.name,
        instruction=word_instruction(config, family, condition, target.spec, None, words, drawer=drawer),
        seed=seed,
        target=target.spec,
        direction=None,
        base_start=base_start,
        placements=kept,
        condition=condition.name,
        drawer=drawer,
        cabinet=placement,
    )


def _cabinet_pose(config: SimConfig, rng: np.random.Generator,
                  y_range: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """World x, y of the cabinet's front middle (y in ``y_range``, default ``cabinet.center_y``) and its yaw
    (facing world -x, give or take)."""
    cabinet = config.cabinet
    front_x = rng.uniform(*cabinet.front_x)
    front_y = rng.uniform(*(y_range or cabinet.center_y))
    return front_x, front_y, math.pi + rng.uniform(*cabinet.yaw)


def _beside_cabinet(config: SimConfig, placements: list[ObjectPlacement],
                    cabinet: CabinetPlacement) -> tuple[ObjectPlacement, ...]:
    """The placements outside the band of world y the cabinet (turned by at most |yaw - pi|) and the clearance
    beside it take: where it stands and where the arm reaches for it."""
    turn = abs(cabinet.yaw - math.pi)
    reach = (config.cabinet.width / 2 * math.cos(turn) + config.cabinet.depth * math.sin(turn)
             + config.tasks.drawer_object_clearance)
    return tuple(p for p in placements if abs(p.y - cabinet.y) > reach)


def in_drawer(config: SimConfig, cabinet: CabinetPlacement, drawer: str, travel: float, point) -> bool:
    """The world ``point`` lies inside ``drawer``'s box, the drawer open by ``travel``, the cabinet at ``cabinet``."""
    local = (*cabinet.to_cabinet(float(point[0]), float(point[1])), float(point[2]) - config.table.height)
    return drawer_interior(config.cabinet, config.cabinet.drawers.index(drawer)).contains(local, travel)


def drawer_handle_world(config: SimConfig, placement: CabinetPlacement, drawer: str,
                        travel: float | None = None) -> np.ndarray:
    """World centre (3,) of ``drawer``'s handle bar with the cabinet at ``placement`` (drawer open by ``travel``,
    default: as placed)."""
    index = config.cabinet.drawers.index(drawer)
    if travel is None:
        travel = placement.drawer_travel[index]
    local = handle_position(config.cabinet, index, travel)
    return np.array([*placement.to_world(local[0], local[1]), config.table.height + local[2]])


def fill_drawer_template(template: str, drawer: str) -> str:
    return " ".join(template.format(drawer=drawer).split())


def drawer_success(config: SimConfig, task: Task, state: SceneState) -> bool:
    tasks = config.tasks
    if task.family == PLACE_INTO_DRAWER:
        released = not state.grasped and state.gripper_open
        return bool(released and in_drawer(config, task.cabinet, task.drawer, state.drawer_travel,
                                           state.object_position))
    if task.family == "open_drawer":
        return bool(state.drawer_travel > tasks.drawer_open_fraction * config.cabinet.travel
                    and state.gripper_opening >= tasks.drawer_released_opening and not state.arm_touches_cabinet)
    # close_drawer
    return bool(state.drawer_travel < tasks.drawer_closed_fraction * config.cabinet.travel
                and not state.arm_touches_cabinet)
