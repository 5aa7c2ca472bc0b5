"""The articulated cabinet of the drawer families: its MJCF, its names and its geometry (config/sim.yaml ``cabinet:``).

Cabinet frame: x out of the front (towards the robot at reset), y to the left seen from the robot, z up; origin on
the table top under the middle of the front face. The carcass (plinth, bottom, top, sides, back and the shelves
between the drawers' slots) is one body *without joints*: it is part of the static scene, so pulling a drawer can
never drag it (it is the table-fixed cabinet a kitchen has). A reset places it by writing its body pose
(`MobileManipulatorSim`), as a look writes the camera's mounting; episodes of other families park it at
``cabinet.parking_position``, inside the bounding box of the parked objects so that the compiled model's extent
(which scales the renderer's shadow map and clip planes) is the same as without the cabinet.

Each drawer is a child body on a slide joint along cabinet +x (qpos = how far it is open, 0 closed, up to
``travel``), with damping and frictionloss so a released drawer stops and stays. It is a real box: front, bottom, two
sides and a back, each a box geom ``drawer_wall_thickness`` thick, so a grasped object cannot pass through it. A
bar handle (its own body, welded to the drawer, origin at the bar's centre) stands ``handle_standoff`` in front of
the front: the handle body is what a drawer task's target names (`DrawerHandleSpec`), because the recorder, the
visibility check and ``image_position`` read a body.

Contacts: every cabinet geom has contype/conaffinity 1/1 (it touches objects, the arm, the fingers and the chassis)
and ``solref = cabinet.solref`` weighted by ``cabinet.solmix``, so the stiff cabinet setting decides a contact with
an object or a pad (MuJoCo mixes two geoms' solref by their solmix weights). Margins are MuJoCo's default (0). No
drawer geom touches the carcass: every drawer sits in its slot with ``clearance`` on each side (the carcass is
static, and MuJoCo only filters parent-child contacts between two moving bodies).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rt1_ros.sim.config import CabinetConfig, SimConfig

CABINET_BODY = "cabinet"
HANDLE_SHAPE = "drawer_handle"


def drawer_body(drawer: str) -> str:
    return f"{drawer}_drawer"


def drawer_joint(drawer: str) -> str:
    return f"{drawer}_drawer"


def handle_body(drawer: str) -> str:
    """The body a drawer task's target names: ``DRAWER_drawer_handle``."""
    return f"{drawer}_{HANDLE_SHAPE}"


def handle_bar_geom(drawer: str) -> str:
    return f"{drawer}_{HANDLE_SHAPE}_bar"


@dataclass(frozen=True)
class DrawerHandleSpec:
    """A drawer task's target: the handle of drawer ``drawer``. It has the fields of `scene.ObjectSpec` that code
    reading a target uses (colour, shape, rgba, name); ``colour`` holds the drawer's word (what an instruction names
    it by), ``shape`` is "drawer_handle", so ``name`` is the handle's body name and the ``family:name`` pair of
    ``tasks.held_out_pairs`` reads ``open_drawer:bottom_drawer_handle``."""

    colour: str
    shape: str
    rgba: tuple[float, float, float, float]

    @property
    def drawer(self) -> str:
        return self.colour

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.shape}"


def handle_spec(config: SimConfig, drawer: str) -> DrawerHandleSpec:
    if drawer not in config.cabinet.drawers:
        raise KeyError(f"unknown drawer {drawer!r}; known: {config.cabinet.drawers}")
    return DrawerHandleSpec(drawer, HANDLE_SHAPE, config.cabinet.handle_rgba)


def slot_bottom(cabinet: CabinetConfig, index: int) -> float:
    """Cabinet-frame z of the floor of drawer ``index``'s slot (0 = top drawer)."""
    from_bottom = len(cabinet.drawers) - 1 - index
    return cabinet.plinth_height + cabinet.panel_thickness * (1 + from_bottom) + cabinet.slot_height * from_bottom


def handle_position(cabinet: CabinetConfig, index: int, travel: float = 0.0) -> np.ndarray:
    """Cabinet-frame centre (3,) of drawer ``index``'s handle bar when the drawer is open by ``travel``."""
    z = slot_bottom(cabinet, index) + cabinet.slot_height / 2
    return np.array([travel + cabinet.handle_standoff, 0.0, z])


@dataclass(frozen=True)
class DrawerInterior:
    """The inside of a drawer box in the cabinet frame with the drawer closed (open it by ``travel``: add it to x):
    between the walls' inner faces, from the bottom's top face up to the walls' top."""

    x: tuple[float, float]  # the back wall's inner face, the front's inner face
    half_width: float  # the side walls' inner faces at +-half_width
    z: tuple[float, float]  # the bottom's top face, the walls' top

    def contains(self, point, travel: float) -> bool:
        """``point`` (cabinet frame, x y z) lies inside the drawer open by ``travel``."""
        x, y, z = (float(v) for v in point)
        return (self.x[0] + travel < x < self.x[1] + travel and abs(y) < self.half_width
                and self.z[0] < z < self.z[1])


def drawer_interior(cabinet: CabinetConfig, index: int) -> DrawerInterior:
    """Drawer ``index``'s inside (0 = top drawer), from the same dimensions `_drawer_xml` builds its walls from."""
    t, c = cabinet.drawer_wall_thickness, cabinet.clearance
    half_w = (cabinet.width - 2 * cabinet.panel_thickness) / 2 - c
    length = cabinet.depth - cabinet.panel_thickness - cabinet.front_thickness - c
    floor = slot_bottom(cabinet, index) + c + t
    return DrawerInterior(x=(-cabinet.front_thickness - length + t, -cabinet.front_thickness),
                          half_width=half_w - t, z=(floor, floor + cabinet.drawer_wall_height))


def _v(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _box(name: str, half: tuple[float, float, float], pos: tuple[float, float, float], material: str) -> str:
    return (f'\n      <geom name="{name}" class="cabinet" type="box" size="{_v(half)}" pos="{_v(pos)}" '
            f'rgba="{material}"/>')


def _drawer_xml(cabinet: CabinetConfig, index: int) -> str:
    """One drawer body (in the carcass frame) with its walls, slide joint and handle."""
    name = cabinet.drawers[index]
    t, c = cabinet.drawer_wall_thickness, cabinet.clearance
    inner_width = cabinet.width - 2 * cabinet.panel_thickness
    half_w = inner_width / 2 - c  # the drawer box's outer half width
    front_half_h = cabinet.slot_height / 2 - c
    length = cabinet.depth - cabinet.panel_thickness - cabinet.front_thickness - c  # behind the front
    floor = slot_bottom(cabinet, index)
    front_rgba, carcass_rgba = _v(cabinet.front_rgba), _v(cabinet.carcass_rgba)
    fx = -cabinet.front_thickness / 2  # the front's outer face is at x = 0 (flush) when closed
    back_x = -cabinet.front_thickness - length + t / 2
    wall_z = floor + c + t + cabinet.drawer_wall_height / 2
    bottom_z = floor + c + t / 2
    side_x = -cabinet.front_thickness - length / 2
    geoms = "".join([
        _box(f"{name}_drawer_front", (cabinet.front_thickness / 2, half_w, front_half_h),
             (fx, 0.0, floor + cabinet.slot_height / 2), front_rgba),
        _box(f"{name}_drawer_bottom", (length / 2, half_w, t / 2), (side_x, 0.0, bottom_z), carcass_rgba),
        _box(f"{name}_drawer_back", (t / 2, half_w, cabinet.drawer_wall_height / 2), (back_x, 0.0, wall_z),
             carcass_rgba),
        _box(f"{name}_drawer_left", (length / 2, t / 2, cabinet.drawer_wall_height / 2),
             (side_x, half_w - t / 2, wall_z), carcass_rgba),
        _box(f"{name}_drawer_right", (length / 2, t / 2, cabinet.drawer_wall_height / 2),
             (side_x, -half_w + t / 2, wall_z), carcass_rgba),
    ])
    bar = handle_position(cabinet, index)
    h = cabinet.handle_thickness / 2
    post_half_x = (cabinet.handle_standoff - h) / 2
    post_y = cabinet.handle_length / 2 - cabinet.handle_post_inset - h
    handle_rgba = _v(cabinet.handle_rgba)
    posts = "".join(
        _box(f"{name}_{HANDLE_SHAPE}_post_{side}", (post_half_x, h, h), (-h - post_half_x, sign * post_y, 0.0),
             handle_rgba)
        for side, sign in (("left", 1.0), ("right", -1.0)))
    return f"""
    <body name="{drawer_body(name)}">
      <joint name="{drawer_joint(name)}" type="slide" axis="1 0 0" range="0 {cabinet.travel}"
             damping="{cabinet.damping}" frictionloss="{cabinet.frictionloss}" armature="{cabinet.armature}"/>
      <inertial pos="{_v((side_x, 0.0, wall_z))}" mass="{cabinet.drawer_mass}"
                diaginertia="{_v([cabinet.drawer_mass * length ** 2 / 12] * 3)}"/>{geoms}
      <body name="{handle_body(name)}" pos="{_v(bar)}">
        <geom name="{handle_bar_geom(name)}" class="cabinet" type="box"
              size="{_v((h, cabinet.handle_length / 2, h))}" rgba="{handle_rgba}"/>{posts}
      </body>
    </body>"""


def cabinet_default_xml(config: SimConfig) -> str:
    """The ``cabinet`` default class (goes inside <default>)."""
    cabinet = config.cabinet
    return (f'\n    <default class="cabinet">\n      <geom contype="1" conaffinity="1" '
            f'friction="{_v(config.table.friction)}" solref="{_v(cabinet.solref)}" solmix="{cabinet.solmix}"/>'
            f'\n    </default>')


def cabinet_xml(config: SimConfig) -> str:
    """The cabinet body tree (goes inside <worldbody>, after every other body so that no earlier joint's index
    changes), parked at ``cabinet.parking_position``."""
    cabinet = config.cabinet
    p = cabinet.panel_thickness
    half_d, half_w = cabinet.depth / 2, cabinet.width / 2
    rgba = _v(cabinet.carcass_rgba)
    top = cabinet.plinth_height + cabinet.height
    panels = [
        _box("cabinet_plinth", (half_d - p, half_w - p, cabinet.plinth_height / 2),
             (-half_d, 0.0, cabinet.plinth_height / 2), rgba),
        _box("cabinet_top", (half_d, half_w, p / 2), (-half_d, 0.0, top - p / 2), rgba),
        _box("cabinet_left", (half_d, p / 2, cabinet.height / 2 - p),
             (-half_d, half_w - p / 2, cabinet.plinth_height + cabinet.height / 2), rgba),
        _box("cabinet_right", (half_d, p / 2, cabinet.height / 2 - p),
             (-half_d, -half_w + p / 2, cabinet.plinth_height + cabinet.height / 2), rgba),
        _box("cabinet_back", (p / 2, half_w - p, cabinet.height / 2 - p),
             (-cabinet.depth + p / 2, 0.0, cabinet.plinth_height + cabinet.height / 2), rgba),
    ]
    for index in range(len(cabinet.drawers)):  # the panel under each slot (the lowest is the bottom panel)
        z = slot_bottom(cabinet, index) - p / 2
        panels.append(_box(f"cabinet_shelf_{index}", (half_d, half_w - p, p / 2), (-half_d, 0.0, z), rgba))
    drawers = "".join(_drawer_xml(cabinet, index) for index in range(len(cabinet.drawers)))
    return f"""
    <body name="{CABINET_BODY}" pos="{_v(cabinet.parking_position)}">{"".join(panels)}{drawers}
    </body>"""
