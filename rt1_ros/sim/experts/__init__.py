"""Scripted experts that solve every task family from the simulator's privileged state (the demonstrations'
source): `core` holds :class:`ScriptedExpert` (the phase machine, the grasp and the motion helpers), and one module
per family group holds that group's phases: `tabletop` (pick, push, move_near), `objects` (move_object_near,
knock_over, place_upright), `receptacles` (place_into, pick_from), `drawers` (open_drawer, close_drawer). The task
side of each group (layouts, success) is the module of the same name in `rt1_ros.sim.tasks`."""
from rt1_ros.sim.experts.core import PHASES, RELABELLING_FAMILIES, ScriptedExpert

__all__ = ["PHASES", "RELABELLING_FAMILIES", "ScriptedExpert"]
