"""Instruction families: episode layouts sampled from a seed, instructions from templates, success from sim state.

Families (``config/sim.yaml: tasks.families``):

* ``pick``      "pick up the <colour> <object>": success while the object is held between both finger pads and its
  centre is ``lift_margin`` above where it rested after the reset.
* ``move_near`` "move near the <colour> <object>": success while the base centre is within ``near_distance``
  (horizontal) of the object. The base starts far enough back that this is false at reset.
* ``push``      "push the <colour> <object> left|right": success while the object is displaced by ``push_margin`` along
  the base's +y (left) or -y (right) axis as it was at reset, and still rests on the table.
* ``open_drawer``  "open the top|middle|bottom drawer" of the cabinet (`rt1_ros.sim.cabinet`; all drawers closed at
  reset): success while that drawer is open by more than ``drawer_open_fraction`` of its travel, the fingers are at
  least ``drawer_released_opening`` apart and no part of the arm touches the cabinet (the handle was let go).
* ``close_drawer`` "close the top|middle|bottom drawer" (that drawer starts ``drawer_start_open`` of its travel
  open, the others closed): success while it is open by less than ``drawer_closed_fraction`` of its travel and no
  part of the arm touches the cabinet.
  A drawer task's ``target`` is the drawer's handle (`cabinet.DrawerHandleSpec`, a body the recorder and the
  visibility check read like an object), ``drawer`` names the drawer and ``cabinet`` says where the cabinet stands;
  the objects on the table are distractors kept clear of the cabinet.

Nothing here touches MuJoCo: layouts are plain numbers and success is computed from a :class:`SceneState` snapshot,
which keeps the checks testable on hand-made states.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rt1_ros.sim.cabinet import DrawerHandleSpec, handle_position, handle_spec
from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import DRAWER_FAMILIES, SimConfig, TaskFamilyConfig
from rt1_ros.sim.scene import ObjectSpec, object_half_width, object_specs

PUSH_DIRECTIONS = ("left", "right")


@dataclass(frozen=True)
class ObjectPlacement:
    spec: ObjectSpec
    x: float  # world
    y: float
    yaw: float


@dataclass(frozen=True)
class CabinetPlacement:
    """Where the drawer families' cabinet stands and how far each drawer is open at reset."""

    x: float  # world, the middle of the front face (closed drawers) on the table top
    y: float
    yaw: float  # heading of the front's outward normal (pi: facing world -x, the robot's start)
    drawer_travel: tuple[float, ...]  # m, per cabinet.drawers entry (top to bottom)


@dataclass(frozen=True)
class Task:
    family: str
    instruction: str
    seed: int
    target: ObjectSpec | DrawerHandleSpec
    direction: str | None  # push only: "left" (+y of the reset base frame) or "right"
    base_start: tuple[float, float, float]  # world x, y, yaw
    placements: tuple[ObjectPlacement, ...]
    condition: str = "seen"  # the evaluation condition the episode was drawn from (config/sim.yaml conditions)
    drawer: str | None = None  # drawer families: which drawer (cabinet.drawers); target is its handle
    cabinet: CabinetPlacement | None = None  # drawer families: the cabinet's placement

    @property
    def target_name(self) -> str:
        return self.target.name

    @property
    def pair(self) -> str:
        """``family:colour_shape``, as tasks.held_out_pairs names it."""
        return f"{self.family}:{self.target.name}"


@dataclass(frozen=True)
class SceneState:
    """What the success checks read, captured from the simulator."""

    base_pose: tuple[float, float, float]  # world x, y, yaw
    object_position: np.ndarray  # (3,) world, the task's target
    object_rest_position: np.ndarray  # (3,) world, the target after the reset settled
    reset_base_yaw: float
    grasped: bool  # both finger pads touch the target
    drawer_travel: float | None = None  # drawer families: how far the task's drawer is open (m)
    gripper_opening: float | None = None  # distance between the finger pads (m)
    arm_touches_cabinet: bool = False  # drawer families: a geom of the arm or gripper touches the cabinet


def sample_task(config: SimConfig, family_name: str, seed: int, rng: np.random.Generator,
                condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """One candidate layout for ``family_name`` under ``condition``, with ``object_count`` objects; None when the
    draw breaks a constraint (the caller redraws with the same generators).

    ``rng`` draws the layout, ``words`` the instruction's wording (template and shape word), so the words never
    change where things are. The condition decides which targets may be asked for (never a held-out pair, or only
    those) and which templates word the instruction. Visibility from the camera needs the rendered model, so the
    simulator checks that and redraws too.
    """
    family = config.tasks.family(family_name)
    if family_name in DRAWER_FAMILIES:
        return _sample_drawer_task(config, family, seed, rng, condition, object_count, words)
    placements = _sample_placements(config, object_count, rng)
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
    base_start = _sample_start_pose(family, rng)
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


def word_instruction(config: SimConfig, family: TaskFamilyConfig, condition: ConditionConfig, target: ObjectSpec,
                     direction: str | None, words: np.random.Generator) -> str:
    """The instruction for ``target``: a template of the condition's set and one of the shape's words."""
    templates = family.templates if condition.instructions == "training" else family.unseen_templates
    template = templates[words.integers(len(templates))]
    shape_words = config.objects.words_for(target.shape)
    shape_word = shape_words[words.integers(len(shape_words))]
    return _fill(template, target.colour, shape_word, direction)


def training_wordings(config: SimConfig, family_name: str, colour: str, shape: str,
                      direction: str | None) -> tuple[str, ...]:
    """Every instruction the training templates word this task with (each template, each of the shape's words).
    Drawer families: ``colour`` is the drawer (a handle's target name reads DRAWER_drawer_handle)."""
    family = config.tasks.family(family_name)
    if family_name in DRAWER_FAMILIES:
        return tuple(dict.fromkeys(_fill_drawer(template, colour) for template in family.templates))
    return tuple(dict.fromkeys(_fill(template, colour, word, direction) for template in family.templates
                               for word in config.objects.words_for(shape)))


def _fill(template: str, colour: str, shape_word: str, direction: str | None) -> str:
    return " ".join(template.format(colour=colour, object=shape_word, direction=direction or "").split())


def check_success(config: SimConfig, task: Task, state: SceneState) -> bool:
    tasks = config.tasks
    if task.family == "pick":
        lifted = state.object_position[2] - state.object_rest_position[2]
        return bool(state.grasped and lifted > tasks.lift_margin)
    if task.family == "move_near":
        bx, by, _ = state.base_pose
        distance = math.hypot(state.object_position[0] - bx, state.object_position[1] - by)
        return bool(distance < tasks.near_distance)
    if task.family == "push":
        # bool(): numpy comparisons give numpy booleans, which JSON (episode.json, reports) refuses.
        return bool(push_displacement(task, state) > tasks.push_margin
                    and state.object_position[2] > config.table.height)
    if task.family == "open_drawer":
        return bool(state.drawer_travel > tasks.drawer_open_fraction * config.cabinet.travel
                    and state.gripper_opening >= tasks.drawer_released_opening and not state.arm_touches_cabinet)
    if task.family == "close_drawer":
        return bool(state.drawer_travel < tasks.drawer_closed_fraction * config.cabinet.travel
                    and not state.arm_touches_cabinet)
    raise KeyError(f"no success check for task family {task.family!r}")


def push_displacement(task: Task, state: SceneState) -> float:
    """Displacement of the target along the push direction, in the base frame the episode started in (m)."""
    delta = state.object_position[:2] - state.object_rest_position[:2]
    yaw = state.reset_base_yaw
    lateral = -math.sin(yaw) * delta[0] + math.cos(yaw) * delta[1]  # base +y component
    return float(lateral if task.direction == "left" else -lateral)


def _sample_placements(config: SimConfig, count: int, rng: np.random.Generator) -> list[ObjectPlacement] | None:
    objects = config.objects
    specs = object_specs(config)
    chosen = rng.choice(len(specs), size=count, replace=False)
    placements: list[ObjectPlacement] = []
    for index in chosen:
        for _ in range(config.tasks.max_resample_attempts):
            x = rng.uniform(*objects.region_x)
            y = rng.uniform(*objects.region_y)
            if all(math.hypot(x - p.x, y - p.y) >= objects.min_separation for p in placements):
                break
        else:
            return None
        placements.append(ObjectPlacement(specs[index], x, y, rng.uniform(-objects.max_yaw, objects.max_yaw)))
    return placements


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


# ---------------------------------------------------------------------------------------------- drawer families
def _sample_drawer_task(config: SimConfig, family: TaskFamilyConfig, seed: int, rng: np.random.Generator,
                        condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """A cabinet on the table with ``family``'s drawer as the target; the objects drawn as for the other families,
    less those where the cabinet stands or the arm reaches for it (the band of world y in front of it)."""
    cabinet, tasks = config.cabinet, config.tasks
    placements = _sample_placements(config, object_count, rng)
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
    base_start = _sample_start_pose(family, rng)
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
        instruction=_fill_drawer(template, drawer),
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


def _fill_drawer(template: str, drawer: str) -> str:
    return " ".join(template.format(drawer=drawer).split())


def _sample_start_pose(family: TaskFamilyConfig, rng: np.random.Generator) -> tuple[float, float, float]:
    pose = family.start_pose
    return (rng.uniform(*pose.x), rng.uniform(*pose.y), rng.uniform(*pose.yaw))
