"""Which family module draws a layout or checks success: :func:`sample_task` and :func:`check_success` hand each
family to its group's module; :func:`training_wordings` words any family's task with the training templates."""
from __future__ import annotations

import numpy as np

from rt1_ros.sim.conditions import ConditionConfig
from rt1_ros.sim.config import DRAWER_FAMILIES, SimConfig
from rt1_ros.sim.scene import ObjectSpec
from rt1_ros.sim.tasks.base import SceneState, Task, fill_template
from rt1_ros.sim.tasks.drawers import (PLACE_INTO_DRAWER, drawer_success, fill_drawer_template,
                                       sample_drawer_task, sample_place_into_drawer_task)
from rt1_ros.sim.tasks.objects import OBJECT_FAMILIES, object_family_success, sample_object_task
from rt1_ros.sim.tasks.receptacles import RECEPTACLE_FAMILIES, receptacle_success, sample_receptacle_task
from rt1_ros.sim.tasks.tabletop import TABLETOP_FAMILIES, sample_tabletop_task, tabletop_success


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
        return sample_object_task(config, family_name, seed, rng, condition, object_count, words)
    if family_name in RECEPTACLE_FAMILIES:
        return sample_receptacle_task(config, family, seed, rng, condition, object_count, words)
    if family_name in DRAWER_FAMILIES:
        return sample_drawer_task(config, family, seed, rng, condition, object_count, words)
    if family_name == PLACE_INTO_DRAWER:
        return sample_place_into_drawer_task(config, family, seed, rng, condition, object_count, words)
    return sample_tabletop_task(config, family_name, seed, rng, condition, object_count, words)


def training_wordings(config: SimConfig, family_name: str, colour: str, shape: str, direction: str | None,
                      reference: ObjectSpec | None = None, receptacle: str | None = None,
                      drawer: str | None = None, paraphrases: bool = False) -> tuple[str, ...]:
    """Every instruction the training templates word this task with (each template, each of the shape's words and,
    with a ``reference``, each of its shape's words), and the family's paraphrases too with ``paraphrases``. Drawer
    families: ``colour`` is the drawer (a handle's target name reads DRAWER_drawer_handle); place_into_drawer names
    its ``drawer``."""
    family = config.tasks.family(family_name)
    templates = family.templates + (family.paraphrases if paraphrases else ())
    if family_name in DRAWER_FAMILIES:
        return tuple(dict.fromkeys(fill_drawer_template(template, colour) for template in templates))
    reference_words = config.objects.words_for(reference.shape) if reference is not None else (None,)
    return tuple(dict.fromkeys(fill_template(template, colour, word, direction, reference, reference_word,
                                             receptacle, drawer)
                               for template in templates for word in config.objects.words_for(shape)
                               for reference_word in reference_words))


def check_success(config: SimConfig, task: Task, state: SceneState) -> bool:
    if task.family in TABLETOP_FAMILIES:
        return tabletop_success(config, task, state)
    if task.family in OBJECT_FAMILIES:
        return object_family_success(config, task, state)
    if task.family in RECEPTACLE_FAMILIES:
        return receptacle_success(config, task, state)
    if task.family in DRAWER_FAMILIES or task.family == PLACE_INTO_DRAWER:
        return drawer_success(config, task, state)
    raise KeyError(f"no success check for task family {task.family!r}")
