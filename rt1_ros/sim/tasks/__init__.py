"""Instruction families: episode layouts sampled from a seed, instructions from templates, success from sim state.

The families (``config/sim.yaml: tasks.families``) come in groups, each in its own module with its layouts, its
success check and the helpers its expert shares:

* `tabletop`:    pick, push, move_near (cubes and cylinders);
* `objects`:     move_object_near, knock_over, place_upright (the scenes may hold cans);
* `receptacles`: place_into, pick_from (a bin or tray on the table);
* `drawers`:     open_drawer, close_drawer, place_into_drawer (a three-drawer cabinet on the table).

`base` holds what they all build on (:class:`Task`, :class:`SceneState`, the placements, the wording and the
shared draws); `core` hands each family to its group (:func:`sample_task`, :func:`check_success`) and words any
family's task with the training templates (:func:`training_wordings`). Import these names from here.

Nothing here touches MuJoCo: layouts are plain numbers and success is computed from a :class:`SceneState` snapshot,
which keeps the checks testable on hand-made states.
"""
from rt1_ros.sim.tasks.base import CabinetPlacement, ObjectPlacement, SceneState, Task, word_instruction
from rt1_ros.sim.tasks.core import check_success, sample_task, training_wordings

__all__ = ["CabinetPlacement", "ObjectPlacement", "SceneState", "Task", "check_success", "sample_task",
           "training_wordings", "word_instruction"]
