"""What every task family builds on: the :class:`Task` an episode is drawn as, the :class:`SceneState` its success
is read from, where objects and the cabinet stand, the instruction wording, and the object and start-pose draws
the families share.

Nothing here touches MuJoCo: layouts are plain numbers and success is computed from a :class:`SceneState` snapshot,
which keeps the checks testable on hand-made states.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rt1_ros.sim.cabinet import DrawerHandleSpec
from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import SimConfig, TaskFamilyConfig
from rt1_ros.sim.scene import ObjectSpec, object_specs


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

    def to_world(self, x: float, y: float) -> tuple[float, float]:
        """World x, y of a cabinet-frame x, y (x out of the front, y to its left, origin at the front's middle)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return self.x + c * x - s * y, self.y + s * x + c * y

    def to_cabinet(self, world_x: float, world_y: float) -> tuple[float, float]:
        """Cabinet-frame x, y of a world x, y (the inverse of :meth:`to_world`)."""
        dx, dy = world_x - self.x, world_y - self.y
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return c * dx + s * dy, -s * dx + c * dy


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


def word_instruction(config: SimConfig, family: TaskFamilyConfig, condition: ConditionConfig, target: ObjectSpec,
                     direction: str | None, words: np.random.Generator, reference: ObjectSpec | None = None,
                     receptacle: str | None = None, drawer: str | None = None) -> str:
    """The instruction for ``target``: a template of the condition's set and one of the shape's words (and, with a
    ``reference``, one of its shape's words, drawn after the target's; a ``receptacle`` or a ``drawer`` by its
    name)."""
    templates = family.templates if condition.instructions == "training" else family.unseen_templates
    template = templates[words.integers(len(templates))]
    shape_words = config.objects.words_for(target.shape)
    shape_word = shape_words[words.integers(len(shape_words))]
    reference_word = None
    if reference is not None:
        reference_words = config.objects.words_for(reference.shape)
        reference_word = reference_words[words.integers(len(reference_words))]
    return fill_template(template, target.colour, shape_word, direction, reference, reference_word, receptacle,
                         drawer)


def fill_template(template: str, colour: str, shape_word: str, direction: str | None,
                  reference: ObjectSpec | None = None, reference_word: str | None = None,
                  receptacle: str | None = None, drawer: str | None = None) -> str:
    """``template`` with its fields filled in, whitespace collapsed."""
    if "{reference_" in template and reference is None:
        raise ValueError(f"template {template!r} names a reference object and the task has none")
    for field, value in (("receptacle", receptacle), ("drawer", drawer)):
        if "{" + field + "}" in template and not value:
            raise ValueError(f"template {template!r} names a {field} and the task has none")
    text = template.format(colour=colour, object=shape_word, direction=direction or "",
                           reference_colour=reference.colour if reference else "", reference_object=reference_word,
                           receptacle=receptacle or "", drawer=drawer or "")
    return " ".join(text.split())


def sample_placements(config: SimConfig, count: int, rng: np.random.Generator,
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


def sample_start_pose(family: TaskFamilyConfig, rng: np.random.Generator) -> tuple[float, float, float]:
    pose = family.start_pose
    return (rng.uniform(*pose.x), rng.uniform(*pose.y), rng.uniform(*pose.yaw))
