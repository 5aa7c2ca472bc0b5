"""Instruction families: episode layouts sampled from a seed, instructions from templates, success from sim state.

Families (``config/sim.yaml: tasks.families``):

* ``pick``      "pick up the <colour> <object>": success while the object is held between both finger pads and its
  centre is ``lift_margin`` above where it rested after the reset.
* ``move_near`` "move near the <colour> <object>": success while the base centre is within ``near_distance``
  (horizontal) of the object. The base starts far enough back that this is false at reset.
* ``push``      "push the <colour> <object> left|right": success while the object is displaced by ``push_margin`` along
  the base's +y (left) or -y (right) axis as it was at reset, and still rests on the table.
* ``place_into`` "place the <colour> <object> into the <receptacle>": success while the object's centre is inside the
  receptacle's walls (inner footprint), above its bottom plate and below its wall top, the object not grasped and
  the gripper commanded open.
* ``pick_from`` "pick the <colour> <object> from the <receptacle> and place it on the table": the object starts
  inside the receptacle; success while it rests on the table top (centre height within ``rest_height_tolerance`` of
  lying there), its centre ``receptacle_clearance`` outside the receptacle's outer footprint, not grasped, gripper open.

The receptacle families draw the receptacle (kind and pose) first, then the objects clear of it, from the same
generator; the earlier families never draw for a receptacle, so their layouts are what they were.

The object families (``cans.families``: their scenes may hold cans, standing unless said otherwise):

* ``move_object_near`` "move the <colour> <object> near the <colour> <object>": the arm carries the target (a cube
  or cylinder) to the reference (``Task.reference``, any object). Success while the target rests on the table (not
  grasped, gripper open, its centre within ``rest_height_tolerance`` of its resting height), its centre within
  ``object_near_distance`` (horizontal) of the reference's, and the reference moved less than
  ``reference_moved_tolerance`` from where it rested. The layout leaves room beside the reference on the target's
  side (the expert's drop spot).
* ``knock_over`` "knock the <colour> can over": success while the can's axis is more than ``knocked_over_tilt``
  from vertical, it is on the table, and nothing of the robot touches it. The layout keeps the push line behind the
  can and its fall line in front (world +x, away from the robot) clear.
* ``place_upright`` "stand the <colour> can up": the can starts lying on its side. Success while its axis is
  within ``upright_tilt`` of vertical, it stands on the table (its centre within ``rest_height_tolerance`` of a
  standing can's height), not grasped and with the gripper open. No other object within ``upright_clearance``.
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
from rt1_ros.sim.receptacles import ReceptacleGeometry, receptacle_geometries, receptacle_geometry
from rt1_ros.sim.scene import (CAN_SHAPE, ObjectSpec, all_object_specs, object_half_height, object_half_width,
                               object_specs)

PUSH_DIRECTIONS = ("left", "right")
RECEPTACLE_FAMILIES = ("place_into", "pick_from")


@dataclass(frozen=True)
class ObjectPlacement:
    spec: ObjectSpec
    x: float  # world
    y: float
    yaw: float
    lying: bool = False  # a can on its side, its axis horizontal along the yaw (place_upright's target)
    support_height: float = 0.0  # what it rests on, above the table top (a receptacle's bottom plate)


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
    reference: ObjectSpec | None = None  # move_object_near: the object to bring the target near
    receptacle: str | None = None  # place_into, pick_from: the receptacle's body name (its kind)
    receptacle_pose: tuple[float, float, float] | None = None  # world x, y, yaw of the receptacle at reset
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
    object_up: np.ndarray | None = None  # (3,) world, the target's own z axis (a can's axis)
    gripper_open: bool = True  # the gripper is commanded open
    gripper_touching: bool = False  # some geom of the robot touches the target
    reference_position: np.ndarray | None = None  # (3,) world, the task's reference object
    reference_rest_position: np.ndarray | None = None  # (3,) world, the reference after the reset settled
    receptacle_pose: tuple[float, float, float] | None = None  # world x, y, yaw of the task's receptacle
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
    if family_name in config.cans.families:
        return _sample_object_family(config, family_name, seed, rng, condition, object_count, words)
    if family_name in RECEPTACLE_FAMILIES:
        return _sample_receptacle_task(config, family, seed, rng, condition, object_count, words)
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
                     direction: str | None, words: np.random.Generator, reference: ObjectSpec | None = None,
                     receptacle: str | None = None) -> str:
    """The instruction for ``target``: a template of the condition's set and one of the shape's words (and, with a
    ``reference``, one of its shape's words, drawn after the target's; a ``receptacle`` by its name)."""
    templates = family.templates if condition.instructions == "training" else family.unseen_templates
    template = templates[words.integers(len(templates))]
    shape_words = config.objects.words_for(target.shape)
    shape_word = shape_words[words.integers(len(shape_words))]
    reference_word = None
    if reference is not None:
        reference_words = config.objects.words_for(reference.shape)
        reference_word = reference_words[words.integers(len(reference_words))]
    return _fill(template, target.colour, shape_word, direction, reference, reference_word, receptacle)


def training_wordings(config: SimConfig, family_name: str, colour: str, shape: str, direction: str | None,
                      reference: ObjectSpec | None = None, receptacle: str | None = None) -> tuple[str, ...]:
    """Every instruction the training templates word this task with (each template, each of the shape's words and,
    with a ``reference``, each of its shape's words). Drawer families: ``colour`` is the drawer (a handle's target
    name reads DRAWER_drawer_handle)."""
    family = config.tasks.family(family_name)
    if family_name in DRAWER_FAMILIES:
        return tuple(dict.fromkeys(_fill_drawer(template, colour) for template in family.templates))
    reference_words = config.objects.words_for(reference.shape) if reference is not None else (None,)
    return tuple(dict.fromkeys(_fill(template, colour, word, direction, reference, reference_word, receptacle)
                               for template in family.templates for word in config.objects.words_for(shape)
                               for reference_word in reference_words))


def _fill(template: str, colour: str, shape_word: str, direction: str | None, reference: ObjectSpec | None = None,
          reference_word: str | None = None, receptacle: str | None = None) -> str:
    if "{reference_" in template and reference is None:
        raise ValueError(f"template {template!r} names a reference object and the task has none")
    if "{receptacle}" in template and not receptacle:
        raise ValueError(f"template {template!r} names a receptacle and the task has none")
    text = template.format(colour=colour, object=shape_word, direction=direction or "",
                           reference_colour=reference.colour if reference else "", reference_object=reference_word,
                           receptacle=receptacle or "")
    return " ".join(text.split())


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
    if task.family == "move_object_near":
        return bool(object_placed_near(config, state) and reference_moved(state) < tasks.reference_moved_tolerance)
    if task.family == "knock_over":
        return bool(axis_tilt(state) > tasks.knocked_over_tilt and state.object_position[2] > config.table.height
                    and not state.gripper_touching)
    if task.family == "place_upright":
        standing_z = config.table.height + config.cans.half_height
        return bool(axis_tilt(state) < tasks.upright_tilt and not state.grasped and state.gripper_open
                    and abs(state.object_position[2] - standing_z) < tasks.rest_height_tolerance)
    if task.family in RECEPTACLE_FAMILIES:
        return _receptacle_success(config, task, state)
    if task.family == "open_drawer":
        return bool(state.drawer_travel > tasks.drawer_open_fraction * config.cabinet.travel
                    and state.gripper_opening >= tasks.drawer_released_opening and not state.arm_touches_cabinet)
    if task.family == "close_drawer":
        return bool(state.drawer_travel < tasks.drawer_closed_fraction * config.cabinet.travel
                    and not state.arm_touches_cabinet)
    raise KeyError(f"no success check for task family {task.family!r}")


def _receptacle_success(config: SimConfig, task: Task, state: SceneState) -> bool:
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


def push_displacement(task: Task, state: SceneState) -> float:
    """Displacement of the target along the push direction, in the base frame the episode started in (m)."""
    delta = state.object_position[:2] - state.object_rest_position[:2]
    yaw = state.reset_base_yaw
    lateral = -math.sin(yaw) * delta[0] + math.cos(yaw) * delta[1]  # base +y component
    return float(lateral if task.direction == "left" else -lateral)


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


def _sample_object_family(config: SimConfig, family_name: str, seed: int, rng: np.random.Generator,
                          condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """A layout of one of the object families: cans stand among the cubes and cylinders (place_upright's target
    lies), the target fits the family, and the room the expert needs is clear."""
    family = config.tasks.family(family_name)
    placements = _sample_placements(config, object_count, rng, all_object_specs(config))
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
    base_start = _sample_start_pose(family, rng)
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


def _sample_placements(config: SimConfig, count: int, rng: np.random.Generator,
                       specs: tuple[ObjectSpec, ...] | None = None, keep_out=None) -> list[ObjectPlacement] | None:
    """``count`` objects of ``specs`` (default: the cubes and cylinders) at separated positions; ``keep_out(x, y)``
    True marks a spot taken by something else."""
    objects = config.objects
    specs = object_specs(config) if specs is None else specs
    chosen = rng.choice(len(specs), size=count, replace=False)
    placements: list[ObjectPlacement] = []
    for index in chosen:
        for _ in range(config.tasks.max_resample_attempts):
            x = rng.uniform(*objects.region_x)
            y = rng.uniform(*objects.region_y)
            if all(math.hypot(x - p.x, y - p.y) >= objects.min_separation for p in placements) and \
                    (keep_out is None or not keep_out(x, y)):
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


def _sample_receptacle_task(config: SimConfig, family: TaskFamilyConfig, seed: int, rng: np.random.Generator,
                            condition: ConditionConfig, object_count: int, words: np.random.Generator) -> Task | None:
    """place_into / pick_from: a receptacle, the objects clear of it, and for pick_from the target moved inside."""
    receptacles = config.receptacles
    geometries = receptacle_geometries(config)
    geometry = geometries[rng.integers(len(geometries))]
    pose = (float(rng.uniform(*receptacles.region_x)), float(rng.uniform(*receptacles.region_y)),
            float(rng.uniform(-receptacles.max_yaw, receptacles.max_yaw)))
    placements = _sample_placements(
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
        base_start=_sample_start_pose(family, rng),
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
