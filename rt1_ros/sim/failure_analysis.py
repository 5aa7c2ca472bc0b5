"""Why a closed-loop episode failed, read from the simulator's privileged state (perception/grounding vs control vs
running out of steps): what `rt1-eval --direct` reports beside each failed row (docs/evaluation.md).

A `FailureTracer` watches an episode step by step (it needs the state at the moment the gripper first closes, which
the end of the episode no longer shows) and `classify()` names the failure:

* pick      ``never closed``; ``closed on another object`` (another object nearer the grip site than the target:
            grounding); ``closed beside the target`` (nothing within reach: localisation); ``closed N cm off the
            target's centre, never held it`` (within reach, but the two pads never touched it together: localisation
            by a centimetre or two); ``held the target N cm off its centre, not lifted`` (both pads on it at some
            step: near the centre, lift or terminate, control; 2-3 cm off, an edge pinched and slipping);
            ``lifted, not terminated in time``.
* push      ``moved another object``; ``target moved N cm of the 6 needed``; ``target not touched (the pads passed
            N cm from its centre)`` (the nearest the pads came while down at its height: localisation) or ``target
            not touched (the pads never down at its height)``.
* move_near ``stopped nearer another object`` (grounding); ``stopped N m short`` (control / step budget).
* move_object_near ``never closed``, ``closed on another object``, ``closed beside the target`` (as pick);
            ``knocked the reference away``; ``still held`` (never let go); ``placed N cm from the reference`` (let go,
            too far, or not resting).
* knock_over ``moved another object``; ``can not touched``; ``can still touched by the robot``; ``can tilted N
            degrees of the M needed``.
* place_upright ``never closed``; ``closed beside the can``; ``still held``; ``can tilted N degrees, needs under
            M`` (let go, not upright); ``upright, not resting on the table``.
* place_into, pick_from: pick's ``never closed`` / ``closed on another object`` / ``closed beside the target``;
            then pick's ``closed N cm off the target's centre, never held it`` / ``held the target N cm off its centre,
            not lifted``; ``still holding the target``; place_into ``let go outside the <receptacle>``; pick_from
            ``let go in the <receptacle>`` or ``put down too near the <receptacle>`` (or off the table); both
            ``gripper left closed`` when only that is missing.
* place_into_drawer: as place_into, with ``let go outside the <drawer> drawer``.
* open_drawer  ``grasped another drawer's handle`` (grounding); ``handle never grasped``; ``opened, not let go``
            (open enough, but the fingers still closed or on the cabinet); ``drawer opened N cm of the M needed``.
* close_drawer ``moved another drawer`` (grounding); ``drawer never touched``; ``closed, gripper still on the
            cabinet``; ``drawer still N cm open (M allowed)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rt1_ros.sim.cabinet import handle_body
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim
from rt1_ros.sim.receptacles import receptacle_geometry
from rt1_ros.sim.scene import object_half_height
from rt1_ros.sim.tasks import Task
from rt1_ros.sim.tasks.drawers import PLACE_INTO_DRAWER, in_drawer
from rt1_ros.sim.tasks.objects import axis_tilt, object_placed_near, reference_moved
from rt1_ros.sim.tasks.receptacles import RECEPTACLE_FAMILIES
from rt1_ros.sim.tasks.tabletop import push_displacement

REACH_M = 0.035  # grip site within this (horizontal) distance of an object's centre counts as on it
MOVED_M = 0.02  # an object displaced more than this was touched


@dataclass
class GripperClosing:
    grip_site: np.ndarray  # (3,) world
    objects: dict[str, np.ndarray]  # name -> (3,) world, every object on the table

    def distances(self) -> dict[str, float]:
        """name -> the horizontal distance from the grip site to the object's centre (m)."""
        return {n: float(np.linalg.norm((p - self.grip_site)[:2])) for n, p in self.objects.items()}


class FailureTracer:
    def __init__(self, sim: MobileManipulatorSim, task: Task) -> None:
        self.sim = sim
        self.task = task
        self.first_close: GripperClosing | None = None
        self._names = [p.spec.name for p in task.placements]
        self.highest_lift = 0.0  # receptacle families: the target's greatest rise above its rest while grasped
        self.target_held = False  # pick and the carrying families: both pads on the target at a step after closing
        self.nearest_low: float | None = None  # push: the pads' nearest pass by the target's centre, down at its height
        drawers = sim.config.cabinet.drawers if task.drawer is not None else ()
        self._start_travel = {d: sim.drawer_travel(d) for d in drawers}
        self.grasped_handles: set[str] = set()  # drawers whose handle the fingers held at some step
        # The families that carry the target somewhere: how high it was lifted tells a bad grasp from a bad drop.
        self._carries = task.family in RECEPTACLE_FAMILIES or task.family == PLACE_INTO_DRAWER
        self._grasps_target = self._carries or task.family == "pick"
        # push: the pads can touch the target only below its top (world z)
        self._target_top = (sim.rest_position(task.target_name)[2] + object_half_height(sim.config, task.target.shape)
                            if task.family == "push" else None)

    def after_step(self) -> None:
        """Call after each control step has been applied."""
        for drawer in self._start_travel:
            if self.sim.is_grasped(handle_body(drawer)):
                self.grasped_handles.add(drawer)
        if self.first_close is None and self.sim.gripper_command > 0.5:
            self.first_close = GripperClosing(self.sim.grip_site_world(),
                                              {n: self.sim.object_position(n) for n in self._names})
        if self._grasps_target and self.first_close is not None and not self.target_held:
            self.target_held = self.sim.is_grasped(self.task.target_name)
        if self.task.family == "push":
            self._track_pads_by_target()
        if self._carries and self.sim.is_grasped(self.task.target_name):
            target = self.task.target_name
            lift = float(self.sim.object_position(target)[2] - self.sim.rest_position(target)[2])
            self.highest_lift = max(self.highest_lift, lift)

    def _track_pads_by_target(self) -> None:
        """Push: the horizontal distance from the grip site to the target's centre, kept at its least over the steps
        whose pads hang lower than the target's top."""
        sim = self.sim
        grip = sim.grip_site_world()
        if grip[2] - sim.config.gripper.pad_half_extents[2] >= self._target_top:
            return
        distance = float(np.linalg.norm((grip - sim.object_position(self.task.target_name))[:2]))
        self.nearest_low = distance if self.nearest_low is None else min(self.nearest_low, distance)

    def classify(self, success: bool) -> str:
        if success:
            return "success"
        family = self.task.family
        if family == "pick":
            return self._pick()
        if family == "push":
            return self._push()
        if family == "move_object_near":
            return self._move_object_near()
        if family == "knock_over":
            return self._knock_over()
        if family == "place_upright":
            return self._place_upright()
        if self._carries:
            return self._receptacle()
        if family == "open_drawer":
            return self._open_drawer()
        if family == "close_drawer":
            return self._close_drawer()
        return self._move_near()

    def _open_drawer(self) -> str:
        drawer, config = self.task.drawer, self.sim.config
        if self.grasped_handles - {drawer} and drawer not in self.grasped_handles:
            return "grasped another drawer's handle"
        if drawer not in self.grasped_handles:
            return "handle never grasped"
        travel = self.sim.drawer_travel(drawer)
        needed = config.tasks.drawer_open_fraction * config.cabinet.travel
        if travel > needed:
            return "opened, not let go"
        return f"drawer opened {100 * max(0.0, travel):.0f} cm of the {100 * needed:.0f} needed"

    def _close_drawer(self) -> str:
        drawer, config = self.task.drawer, self.sim.config
        moved = {d: abs(self.sim.drawer_travel(d) - start) for d, start in self._start_travel.items()}
        if any(moved[d] > MOVED_M for d in moved if d != drawer):
            return "moved another drawer"
        if moved[drawer] <= MOVED_M:
            return "drawer never touched"
        travel = self.sim.drawer_travel(drawer)
        allowed = config.tasks.drawer_closed_fraction * config.cabinet.travel
        if travel < allowed:
            return "closed, gripper still on the cabinet"
        return f"drawer still {100 * travel:.0f} cm open ({100 * allowed:.1f} allowed)"

    def _closing(self) -> str | None:
        """Where the gripper first closed, when that already explains the failure (pick's grounding and
        localisation reasons)."""
        if self.first_close is None:
            return "never closed"
        target = self.task.target_name
        distances = self.first_close.distances()
        nearest = min(distances, key=distances.get)
        if nearest != target and distances[nearest] < REACH_M:
            return "closed on another object"
        if distances[target] >= REACH_M:
            return "closed beside the target"
        return None

    def _move_object_near(self) -> str:
        state = self.sim.scene_state()
        tasks = self.sim.config.tasks
        if reference_moved(state) >= tasks.reference_moved_tolerance:
            return "knocked the reference away"
        closing = self._closing()
        if closing is not None:
            return closing
        if state.grasped:
            return "still held"
        if object_placed_near(self.sim.config, state):  # placed, yet not a success: only the reference can say no
            return "knocked the reference away"
        distance = float(np.linalg.norm(state.object_position[:2] - state.reference_position[:2]))
        return f"placed {100 * distance:.0f} cm from the reference"

    def _knock_over(self) -> str:
        target = self.task.target_name
        moved = {n: float(np.linalg.norm((self.sim.object_position(n) - self.sim.rest_position(n))[:2]))
                 for n in self._names}
        state = self.sim.scene_state()
        tilt = math.degrees(axis_tilt(state))
        if any(moved[n] > MOVED_M for n in self._names if n != target):
            return "moved another object"
        if moved[target] <= MOVED_M and tilt < 5.0:
            return "can not touched"
        needed = math.degrees(self.sim.config.tasks.knocked_over_tilt)
        if tilt > needed and state.gripper_touching:
            return "can still touched by the robot"
        return f"can tilted {tilt:.0f} degrees of the {needed:.0f} needed"

    def _place_upright(self) -> str:
        closing = self._closing()
        if closing is not None:
            return "closed beside the can" if closing == "closed beside the target" else closing
        state = self.sim.scene_state()
        if state.grasped or not state.gripper_open:
            return "still held"
        tilt = math.degrees(axis_tilt(state))
        limit = math.degrees(self.sim.config.tasks.upright_tilt)
        if tilt >= limit:
            return f"can tilted {tilt:.0f} degrees, needs under {limit:.0f}"
        return "upright, not resting on the table"

    def _receptacle(self) -> str:
        closing = self._closing()
        if closing is not None:
            return closing
        sim, task = self.sim, self.task
        target = task.target_name
        if self.highest_lift <= sim.config.tasks.lift_margin:
            return self._not_lifted()
        if sim.is_grasped(target):
            return "still holding the target"
        if task.family == PLACE_INTO_DRAWER:
            if not in_drawer(sim.config, task.cabinet, task.drawer, sim.drawer_travel(task.drawer),
                             sim.object_position(target)):
                return f"let go outside the {task.drawer} drawer"
            return "gripper left closed"  # inside and let go: only the gripper command can be missing
        geometry = receptacle_geometry(sim.config, task.receptacle)
        position = sim.object_position(target)
        pose = sim.receptacle_pose(task.receptacle)
        inside = geometry.inside(pose, position)
        if task.family == "place_into" and not inside:
            return f"let go outside the {task.receptacle}"
        if task.family == "pick_from":
            if inside:
                return f"let go in the {task.receptacle}"
            if geometry.distance_outside(pose, position) <= sim.config.tasks.receptacle_clearance:
                return f"put down too near the {task.receptacle}"
        if sim.gripper_command >= 0.5:
            return "gripper left closed"
        return "not resting on the table" if task.family == "pick_from" else f"not resting in the {task.receptacle}"

    def _pick(self) -> str:
        closing = self._closing()
        if closing is not None:
            return closing
        target = self.task.target_name
        lifted = self.sim.object_position(target)[2] - self.sim.rest_position(target)[2]
        if self.sim.is_grasped(target) and lifted > self.sim.config.tasks.lift_margin:
            return "lifted, not terminated in time"
        return self._not_lifted()

    def _not_lifted(self) -> str:
        """Closed within reach of the target and it never came up: missed by a centimetre or two (the pads never
        both touched it), or held and not lifted."""
        off = 100 * self.first_close.distances()[self.task.target_name]  # cm, horizontal
        if self.target_held:
            return f"held the target {off:.0f} cm off its centre, not lifted"
        return f"closed {off:.0f} cm off the target's centre, never held it"

    def _push(self) -> str:
        target = self.task.target_name
        moved = {n: float(np.linalg.norm((self.sim.object_position(n) - self.sim.rest_position(n))[:2]))
                 for n in self._names}
        if any(moved[n] > MOVED_M for n in self._names if n != target):
            return "moved another object"
        if moved[target] <= MOVED_M:
            if self.nearest_low is None:
                return "target not touched (the pads never down at its height)"
            return f"target not touched (the pads passed {100 * self.nearest_low:.0f} cm from its centre)"
        displacement = push_displacement(self.task, self.sim.scene_state())
        needed = self.sim.config.tasks.push_margin
        return f"target moved {100 * max(0.0, displacement):.0f} cm of the {100 * needed:.0f} needed"

    def _move_near(self) -> str:
        odom = self.sim.odometry()
        distances = {n: math.hypot(*(self.sim.object_position(n)[:2] - (odom.x, odom.y))) for n in self._names}
        target = self.task.target_name
        nearest = min(distances, key=distances.get)
        if nearest != target and distances[nearest] < self.sim.config.tasks.near_distance:
            return "stopped nearer another object"
        short = distances[target] - self.sim.config.tasks.near_distance
        return f"stopped {short:.1f} m short"
