"""The drawer families: layouts and success of open_drawer and close_drawer (the cabinet itself:
`rt1_ros.sim.cabinet`; the family names: ``config.DRAWER_FAMILIES``).

* ``open_drawer``  "open the top|middle|bottom drawer" of the cabinet (all drawers closed at reset): success while
  that drawer is open by more than ``drawer_open_fraction`` of its travel, the fingers are at least
  ``drawer_released_opening`` apart and no part of the arm touches the cabinet (the handle was let go).
* ``close_drawer`` "close the top|middle|bottom drawer" (that drawer starts ``drawer_start_open`` of its travel
  open, the others closed): success while it is open by less than ``drawer_closed_fraction`` of its travel and no
  part of the arm touches the cabinet.

A drawer task's ``target`` is the drawer's handle (`cabinet.DrawerHandleSpec`, a body the recorder and the
visibility check read like an object), ``drawer`` names the drawer and ``cabinet`` says where the cabinet stands;
the objects on the table are distractors kept clear of the cabinet.
"""
from __future__ import annotations

import math

import numpy as np

from rt1_ros.sim.cabinet import handle_position, handle_spec
from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import SimConfig, TaskFamilyConfig
from rt1_ros.sim.tasks.base import CabinetPlacement, SceneState, Task, sample_placements, sample_start_pose


def sample_drawer_task(config: SimConfig, family: TaskFamilyConfig, seed: int, rng: np.random.Generator,
                       condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """A cabinet on the table with ``family``'s drawer as the target; the objects drawn as for the other families,
    less those where the cabinet stands or the arm reaches for it (the band of world y in front of it)."""
    cabinet, tasks = config.cabinet, config.tasks
    placements = sample_placements(config, object_count, rng)
    if placements is None:
        return None
    front_x = rng.uniform(*cabinet.front_x)
    front_y = rng.uniform(*cabinet.center_y)
    yaw = math.pi + rng.uniform(*cabinet.yaw)  # facing world -x, give or take
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
    # The cabinet's extent along world y (it is turned by at most |yaw - pi|) and the clearance beside it.
    turn = abs(yaw - math.pi)
    reach = cabinet.width / 2 * math.cos(turn) + cabinet.depth * math.sin(turn) + tasks.drawer_object_clearance
    kept = tuple(p for p in placements if abs(p.y - front_y) > reach)
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


def drawer_handle_world(config: SimConfig, placement: CabinetPlacement, drawer: str,
                        travel: float | None = None) -> np.ndarray:
    """World centre (3,) of ``drawer``'s handle bar with the cabinet at ``placement`` (drawer open by ``travel``,
    default: as placed)."""
    index = config.cabinet.drawers.index(drawer)
    if travel is None:
        travel = placement.drawer_travel[index]
    local = handle_position(config.cabinet, index, travel)
    c, s = math.cos(placement.yaw), math.sin(placement.yaw)
    return np.array([placement.x + c * local[0] - s * local[1], placement.y + s * local[0] + c * local[1],
                     config.table.height + local[2]])


def fill_drawer_template(template: str, drawer: str) -> str:
    return " ".join(template.format(drawer=drawer).split())


def drawer_success(config: SimConfig, task: Task, state: SceneState) -> bool:
    tasks = config.tasks
    if task.family == "open_drawer":
        return bool(state.drawer_travel > tasks.drawer_open_fraction * config.cabinet.travel
                    and state.gripper_opening >= tasks.drawer_released_opening and not state.arm_touches_cabinet)
    # close_drawer
    return bool(state.drawer_travel < tasks.drawer_closed_fraction * config.cabinet.travel
                and not state.arm_touches_cabinet)
