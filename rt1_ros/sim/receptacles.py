"""Receptacles: a bottom plate with low walls on it, one body per kind of ``config/sim.yaml: receptacles``.

* ``box`` (the tray): a rectangular plate and four straight walls.
* ``ring`` (the bowl): a regular polygon of ``ring_sides`` straight walls (one faces +x) around a round plate. The
  plate's collision geom is a square inside the walls (hidden, geom group 3) and a non-colliding cylinder shows it:
  a flat cylinder on the table top would touch it at one point (MuJoCo's general convex collision) and rock, a box
  rests on four.

Each receptacle is a mocap body: kinematic, it stays where a reset put it (``data.mocap_pos``/``mocap_quat``,
written like ``qpos``) and a push does not move it, as a heavy tray would not. A free body would add six degrees of
freedom per receptacle to the model, and that alone changes the earlier families' physics (MuJoCo's solver
tolerances and factorisation see the larger system: object poses differ by 1e-20 after two steps and by 0.1 mm and
different images within an episode, measured); a mocap body adds no degrees of freedom, and parked on the floor it
has no contacts (MuJoCo does not collide two static bodies), so their episodes stay bit-for-bit the same.

The body's origin is the centre of the plate's underside, so on the table it sits at the table top's height. Every
colliding geom is a box (box-box and box-object contacts have several points, so nothing rocks), in class
``receptacle``: contype/conaffinity 1/1 like the scene and the objects (the fingers, the arm, the chassis and the
objects all touch it), condim 3, no margin, and contacts stiffer than MuJoCo's default (``receptacles.solref`` /
``solimp``; MuJoCo averages them with the other geom's). A wall is 12 mm thick, a third of an object's width. Pushed
into a wall by the arm, a grasped object stops at it (at most a few mm into it) and the gripper's force-limited
fingers give way and ride over it (`test_receptacles.py` pushes a grasped object 20 cm through a wall).

Geometry queries (the inside and outer footprints) are plain numbers, so the success checks and the layout sampler
use them without MuJoCo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from rt1_ros.sim.config import ReceptacleKindConfig, SimConfig

RECEPTACLE_CLASS = "receptacle"
HIDDEN_GEOM_GROUP = 3  # not drawn by default (MuJoCo shows groups 0-2)


@dataclass(frozen=True)
class ReceptacleGeometry:
    """One receptacle kind's shape in its body frame (origin at the plate's underside centre, z up)."""

    kind: ReceptacleKindConfig
    wall_thickness: float
    bottom_thickness: float
    ring_sides: int

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def floor_height(self) -> float:
        """The plate's top above the body origin: where a placed object rests."""
        return self.bottom_thickness

    @property
    def wall_top(self) -> float:
        return self.bottom_thickness + self.kind.wall_height

    @property
    def outer_half_extents(self) -> tuple[float, float]:
        """box: the outer half length along x and y; ring: the outer apothem, twice."""
        hx, hy = self.kind.inner_half_extents
        return hx + self.wall_thickness, hy + self.wall_thickness

    @property
    def outer_radius(self) -> float:
        """ring: the circumradius of the walls' outer polygon (what a neighbour keeps clear of)."""
        return self.outer_half_extents[0] / math.cos(math.pi / self.ring_sides)

    def local_xy(self, pose: tuple[float, float, float], point) -> tuple[float, float]:
        """A world point's x, y in the receptacle's frame at ``pose`` (world x, y, yaw)."""
        dx, dy = float(point[0]) - pose[0], float(point[1]) - pose[1]
        c, s = math.cos(pose[2]), math.sin(pose[2])
        return c * dx + s * dy, -s * dx + c * dy

    def inside(self, pose: tuple[float, float, float], point, margin: float = 0.0) -> bool:
        """The point's x, y lies inside the walls' inner faces, at least ``margin`` from them."""
        lx, ly = self.local_xy(pose, point)
        hx, hy = self.kind.inner_half_extents
        if self.kind.shape == "ring":
            return math.hypot(lx, ly) < hx - margin
        return abs(lx) < hx - margin and abs(ly) < hy - margin

    def distance_outside(self, pose: tuple[float, float, float], point) -> float:
        """Horizontal distance from the point to the receptacle's outer footprint (0 on or inside it)."""
        lx, ly = self.local_xy(pose, point)
        if self.kind.shape == "ring":
            return max(0.0, math.hypot(lx, ly) - self.outer_radius)
        hx, hy = self.outer_half_extents
        return math.hypot(max(0.0, abs(lx) - hx), max(0.0, abs(ly) - hy))


def receptacle_geometries(config: SimConfig) -> tuple[ReceptacleGeometry, ...]:
    receptacles = config.receptacles
    return tuple(ReceptacleGeometry(kind, receptacles.wall_thickness, receptacles.bottom_thickness,
                                    receptacles.ring_sides) for kind in receptacles.kinds)


def receptacle_geometry(config: SimConfig, name: str) -> ReceptacleGeometry:
    for geometry in receptacle_geometries(config):
        if geometry.name == name:
            return geometry
    raise KeyError(f"unknown receptacle {name!r}")


def _v(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _box(name: str, half: tuple[float, float, float], pos: tuple[float, float, float], yaw: float,
         extra: str = "") -> str:
    return (f'\n      <geom name="{name}" class="{RECEPTACLE_CLASS}" type="box" size="{_v(half)}" pos="{_v(pos)}" '
            f'euler="0 0 {yaw:.6g}"{extra}/>')


def _geoms_xml(geometry: ReceptacleGeometry) -> str:
    """The plate and the walls of one receptacle."""
    kind, t = geometry.kind, geometry.wall_thickness
    name, rgba = kind.name, f' rgba="{_v(kind.rgba)}"'
    bottom_z = geometry.bottom_thickness / 2
    wall_half_z = kind.wall_height / 2
    wall_z = geometry.floor_height + wall_half_z
    hx, hy = kind.inner_half_extents
    ox, oy = geometry.outer_half_extents
    if kind.shape == "box":
        geoms = _box(f"{name}_bottom", (ox, oy, bottom_z), (0.0, 0.0, bottom_z), 0.0, rgba)
        for index, (sx, sy) in enumerate(((1, 0), (-1, 0), (0, 1), (0, -1))):
            half = (t / 2, oy, wall_half_z) if sx else (hx, t / 2, wall_half_z)
            pos = (sx * (hx + t / 2), sy * (hy + t / 2), wall_z)
            geoms += _box(f"{name}_wall_{index}", half, pos, 0.0, rgba)
        return geoms
    sides = geometry.ring_sides
    # The plate: a square inside the walls' outer polygon collides (its corners reach the diagonal walls' outer
    # faces, and it supports every centre an object inside the walls can have); a cylinder shows it.
    square = ox / math.sqrt(2.0)
    geoms = _box(f"{name}_bottom", (square, square, bottom_z), (0.0, 0.0, bottom_z), 0.0,
                 f' group="{HIDDEN_GEOM_GROUP}"{rgba}')
    geoms += (f'\n      <geom name="{name}_plate" type="cylinder" size="{ox:.6g} {bottom_z:.6g}" '
              f'pos="0 0 {bottom_z:.6g}" contype="0" conaffinity="0"{rgba}/>')
    side_half = ox * math.tan(math.pi / sides)  # outer corners of neighbouring walls meet
    for index in range(sides):
        angle = 2 * math.pi * index / sides
        radius = hx + t / 2
        pos = (radius * math.cos(angle), radius * math.sin(angle), wall_z)
        geoms += _box(f"{name}_wall_{index}", (t / 2, side_half, wall_half_z), pos, angle, rgba)
    return geoms


def receptacles_xml(config: SimConfig) -> str:
    """One mocap body per receptacle kind, parked (``receptacles.parking_origin``) until an episode places it."""
    receptacles = config.receptacles
    bodies = []
    for index, geometry in enumerate(receptacle_geometries(config)):
        park = receptacles.parking_origin
        pos = (park[0] + index * receptacles.parking_spacing, park[1], park[2])
        bodies.append(f"""
    <body name="{geometry.name}" pos="{_v(pos)}" mocap="true">{_geoms_xml(geometry)}
    </body>""")
    return "".join(bodies)


def receptacle_default_xml(config: SimConfig) -> str:
    """The ``receptacle`` geom class (contact settings, see the module doc)."""
    receptacles = config.receptacles
    return (f'\n    <default class="{RECEPTACLE_CLASS}">\n      <geom contype="1" conaffinity="1" condim="3" '
            f'friction="{_v(receptacles.friction)}" solref="{_v(receptacles.solref)}" '
            f'solimp="{_v(receptacles.solimp)}"/>\n    </default>')
