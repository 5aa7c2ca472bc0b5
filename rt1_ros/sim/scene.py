"""MJCF of the mobile manipulator scene, generated from :class:`SimConfig`.

Robot
-----
* **Base**: a holonomic planar base on three joints (world slide x, world slide y, hinge yaw) driven by MuJoCo
  ``velocity`` actuators. The simulator rotates the commanded base-frame twist into world-frame joint velocities at
  the IK rate. Velocity actuators (rather than writing ``qvel`` kinematically) keep the base a dynamic body: it is
  stopped by the table instead of tunnelling through it, its forces are bounded, and the arm's reaction forces act on
  it. With ``implicitfast`` the actuator damping is integrated implicitly, so a 10 ms time constant is stable at a
  2 ms step. There are no wheels: the base is an omnidirectional platform, which is what the action space's
  ``base_y`` assumes.
* **Arm**: six revolute joints (shoulder pan, shoulder lift, elbow, forearm roll, wrist pitch, wrist roll); the last
  three axes meet at the wrist (a spherical wrist), so position and full orientation are both controllable away from
  singularities. Position actuators track joint targets that the simulator's differential IK computes; the links
  have ``gravcomp`` so the position servos need no integral action to hold the arm still.
* **Gripper**: two slide fingers with position actuators (one per finger, same command), box pads with high friction
  and ``condim=4`` (torsional friction stops a grasped block from pivoting); elliptic cones and ``impratio`` keep the
  friction stiff. The squeeze force is ``kp`` times the remaining travel, clipped at ``max_force``.
* **Camera**: ``head`` on a mast at the back of the base, tilted down over the table and the gripper workspace.

Scene: floor (checker texture by default, so base motion is visible in the image), a table, and one free body for
every (colour, shape) pair. An episode places some of them on the table and parks the rest far out of view: the model
is compiled once and a reset only rewrites ``qpos`` and the look (`rt1_ros.sim.variation`). Cans (``cans:``, shape
``can``) come after the cubes and cylinders in the model and join only the families of ``cans.families``; they have
``condim=6``, whose rolling friction keeps a can lying on its side from rolling away on its own. A parked can
floats (``gravcomp``, switched off for the cans an episode places) clear of the floor, so it adds no contact to the
constraint solve of the families that do not use it. The table and the floor have one material per texture of
``SURFACE_TEXTURES`` (white and grey patterns, tinted per episode through the material's colour); a reset picks one
for each by switching the geoms' material.

Receptacles (`rt1_ros.sim.receptacles`): one mocap body per kind (no degrees of freedom), on the table in the
episodes that use one and parked far out of view otherwise, like unused objects. The cabinet of the drawer families
(`rt1_ros.sim.cabinet`) comes last in the body tree: a static carcass a reset places or parks (it writes the body's
pose, as a look writes the camera's), with a slide joint per drawer.

The cans' and the drawers' degrees of freedom take the model past 60, where MuJoCo's ``jacobian="auto"`` switches to
sparse constraint Jacobians; the model asks for the dense ones that "auto" chose before, so the earlier families keep
their solver. Their layouts and every sampled number are the same; the solver's sums over the extra (zero) velocities
round differently in the last bit, which a settling object can amplify to ~1e-4 m in its pose (a few pixels off by a
level or two in some reset images; expert episodes end the same).

Collision filtering: static scene, objects and receptacles use contype/conaffinity 1/1; the arm and fingers use 2/1
(they touch the scene and objects but never each other); the chassis uses 4/1 (it touches the table and objects, not
the arm).
"""
from __future__ import annotations

from dataclasses import dataclass

from rt1_ros.sim.cabinet import cabinet_default_xml, cabinet_xml
from rt1_ros.sim.conditions import SURFACE_TEXTURES
from rt1_ros.sim.config import SimConfig
from rt1_ros.sim.receptacles import receptacle_default_xml, receptacles_xml
from rt1_ros.sim.variation import camera_axes

BASE_JOINTS = ("base_x", "base_y", "base_yaw")
ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll")
FINGER_JOINTS = ("finger_left", "finger_right")
LEFT_PAD_GEOM = "finger_left_pad"
RIGHT_PAD_GEOM = "finger_right_pad"
GRIP_SITE = "grip_site"
BASE_BODY = "base"
TABLE_GEOM = "table_top"
TABLE_LEG_GEOMS = tuple(f"table_leg_{i}" for i in range(4))
FLOOR_GEOM = "floor"
SUN_LIGHT = "sun"
SHAPES = ("cube", "cylinder")  # the shapes every family's scenes hold
CAN_SHAPE = "can"  # only in the scenes of cans.families
# Nominal lights; a scene look scales them (rt1_ros.sim.variation).
SUN_DIFFUSE = 0.6
SUN_DIRECTION = (-0.1, 0.15, -1.0)
HEADLIGHT_AMBIENT = 0.35
HEADLIGHT_DIFFUSE = 0.4

# Surface textures: white-and-grey patterns that a material tints. texrepeat is per metre (texuniform).
_TEXTURES = {
    "checker": ('builtin="checker" rgb1="1 1 1" rgb2="0.78 0.78 0.78" width="256" height="256"', 4.0),
    "speckle": ('builtin="flat" mark="random" random="0.06" rgb1="1 1 1" markrgb="0.6 0.6 0.6" width="512" '
                'height="512"', 0.5),
    "grid": ('builtin="flat" mark="edge" rgb1="1 1 1" markrgb="0.45 0.45 0.45" width="128" height="128"', 6.0),
    "gradient": ('builtin="gradient" rgb1="1 1 1" rgb2="0.5 0.5 0.5" width="256" height="256"', 0.8),
}


def surface_material(surface: str, texture: str) -> str:
    """The material name of ``surface`` ("table" or "floor") with ``texture`` (one of SURFACE_TEXTURES)."""
    return f"{surface}_{texture}"


@dataclass(frozen=True)
class ObjectSpec:
    """One free body of the scene: a coloured shape."""

    colour: str
    shape: str
    rgba: tuple[float, float, float, float]

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.shape}"


def object_specs(config: SimConfig) -> tuple[ObjectSpec, ...]:
    """The cubes and cylinders, in the order every family's sampling draws from."""
    return tuple(ObjectSpec(c.name, shape, c.rgba) for c in config.objects.colours for shape in SHAPES)


def can_specs(config: SimConfig) -> tuple[ObjectSpec, ...]:
    return tuple(ObjectSpec(c.name, CAN_SHAPE, c.rgba) for c in config.objects.colours)


def all_object_specs(config: SimConfig) -> tuple[ObjectSpec, ...]:
    """Every free body of the scene, in model order: the cubes and cylinders, then the cans."""
    return object_specs(config) + can_specs(config)


def object_half_height(config: SimConfig, shape: str) -> float:
    """Half the height of an object standing on its base (a can on an end)."""
    objects = config.objects
    if shape == CAN_SHAPE:
        return config.cans.half_height
    return objects.cube_half_size if shape == "cube" else objects.cylinder_half_height


def object_half_width(config: SimConfig, shape: str) -> float:
    """Half the width a parallel gripper closes on (face-aligned for a cube)."""
    objects = config.objects
    if shape == CAN_SHAPE:
        return config.cans.radius
    return objects.cube_half_size if shape == "cube" else objects.cylinder_radius


def _v(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _camera_axes(pitch_deg: float) -> str:
    """MJCF xyaxes of the nominal head camera (MuJoCo cameras look along their -z, +y up in the image)."""
    axes = camera_axes(pitch_deg)
    return _v((*axes[:, 0], *axes[:, 1]))


def _arm_xml(config: SimConfig) -> str:
    arm, grip = config.arm, config.gripper
    r = arm.link_radius
    rng = arm.joint_ranges
    joint = 'armature="{a}" damping="{d}"'.format(a=arm.armature, d=arm.damping)
    link = f'class="arm" mass="{arm.link_mass}"'
    palm_hz = grip.palm_half_extents[2]
    pad_x, pad_y, pad_z = grip.pad_half_extents
    finger_z = -2.0 * palm_hz  # fingers hang from the palm's underside
    pad_centre_z = finger_z - pad_z
    forearm_rest = arm.forearm_length - arm.forearm_roll_offset
    return f"""
      <body name="arm_mount" pos="{_v(arm.mount_position)}" gravcomp="1">
        <joint name="shoulder_pan" axis="0 0 1" range="{_v(rng[0])}" {joint}/>
        <geom {link} type="cylinder" size="{1.4 * r} {arm.shoulder_height / 2}" pos="0 0 {arm.shoulder_height / 2}"/>
        <body name="upper_arm" pos="0 0 {arm.shoulder_height}" gravcomp="1">
          <joint name="shoulder_lift" axis="0 1 0" range="{_v(rng[1])}" {joint}/>
          <geom {link} type="capsule" size="{r}" fromto="0 0 0 0 0 {arm.upper_arm_length}"/>
          <body name="forearm" pos="0 0 {arm.upper_arm_length}" gravcomp="1">
            <joint name="elbow" axis="0 1 0" range="{_v(rng[2])}" {joint}/>
            <geom {link} type="capsule" size="{0.9 * r}" fromto="0 0 0 {arm.forearm_roll_offset} 0 0"/>
            <body name="forearm_distal" pos="{arm.forearm_roll_offset} 0 0" gravcomp="1">
              <joint name="forearm_roll" axis="1 0 0" range="{_v(rng[3])}" {joint}/>
              <geom {link} type="capsule" size="{0.8 * r}" fromto="0 0 0 {forearm_rest} 0 0"/>
              <body name="wrist" pos="{forearm_rest} 0 0" gravcomp="1">
                <joint name="wrist_pitch" axis="0 1 0" range="{_v(rng[4])}" {joint}/>
                <geom {link} type="capsule" size="{0.7 * r}" fromto="0 0 0 0 0 {-arm.wrist_length}"/>
                <body name="hand" pos="0 0 {-arm.wrist_length}" gravcomp="1">
                  <joint name="wrist_roll" axis="0 0 1" range="{_v(rng[5])}" {joint}/>
                  <geom class="arm" type="box" size="{_v(grip.palm_half_extents)}" pos="0 0 {-palm_hz}"
                        mass="{grip.palm_mass}" rgba="{_v(grip.rgba)}"/>
                  <site name="{GRIP_SITE}" pos="0 0 {pad_centre_z}" xyaxes="1 0 0 0 -1 0" size="0.005"/>
                  <body name="finger_left" pos="0 0 {finger_z}" gravcomp="1">
                    <joint name="finger_left" type="slide" axis="0 1 0" range="0 {grip.finger_travel}"
                           damping="{arm.damping}" armature="{arm.armature}"/>
                    <geom name="{LEFT_PAD_GEOM}" class="pad" pos="0 {pad_y} {-pad_z}"/>
                  </body>
                  <body name="finger_right" pos="0 0 {finger_z}" gravcomp="1">
                    <joint name="finger_right" type="slide" axis="0 -1 0" range="0 {grip.finger_travel}"
                           damping="{arm.damping}" armature="{arm.armature}"/>
                    <geom name="{RIGHT_PAD_GEOM}" class="pad" pos="0 {-pad_y} {-pad_z}"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>"""


def _objects_xml(config: SimConfig) -> str:
    objects = config.objects
    bodies = []
    for index, spec in enumerate(object_specs(config)):
        if spec.shape == "cube":
            geom = f'type="box" size="{_v([objects.cube_half_size] * 3)}"'
        else:
            geom = f'type="cylinder" size="{objects.cylinder_radius} {objects.cylinder_half_height}"'
        park = objects.parking_origin
        pos = (park[0] + index * objects.parking_spacing, park[1], park[2])
        bodies.append(
            f"""
    <body name="{spec.name}" pos="{_v(pos)}">
      <freejoint name="{spec.name}"/>
      <geom name="{spec.name}" class="object" {geom} rgba="{_v(spec.rgba)}"/>
    </body>"""
        )
    cans = config.cans
    for index, spec in enumerate(can_specs(config)):
        park = cans.parking_origin
        pos = (park[0] + index * cans.parking_spacing, park[1], park[2])
        bodies.append(
            f"""
    <body name="{spec.name}" pos="{_v(pos)}" gravcomp="1">
      <freejoint name="{spec.name}"/>
      <geom name="{spec.name}" class="object" type="cylinder" size="{cans.radius} {cans.half_height}"
            mass="{cans.mass}" friction="{_v(cans.friction)}" condim="{cans.condim}" rgba="{_v(spec.rgba)}"/>
    </body>"""
        )
    return "".join(bodies)


def _table_xml(config: SimConfig) -> str:
    table = config.table
    cx, cy = table.center
    hx, hy = table.half_extents
    top_z = table.height - table.thickness / 2
    leg_half = (table.height - table.thickness) / 2
    inset = 2 * table.leg_radius
    material = surface_material("table", "plain")
    legs = "".join(
        f'\n    <geom name="{name}" class="scene" type="cylinder" size="{table.leg_radius} {leg_half}" '
        f'pos="{_v((cx + sx * (hx - inset), cy + sy * (hy - inset), leg_half))}" material="{material}"/>'
        for name, (sx, sy) in zip(TABLE_LEG_GEOMS, ((-1, -1), (-1, 1), (1, -1), (1, 1)))
    )
    return (
        f'\n    <geom name="{TABLE_GEOM}" class="scene" type="box" size="{hx} {hy} {table.thickness / 2}" '
        f'pos="{cx} {cy} {top_z}" material="{material}"/>{legs}'
    )


def _surface_assets(config: SimConfig) -> str:
    """A texture per pattern and, for the table and the floor, a material per entry of SURFACE_TEXTURES."""
    textures = "".join(f'\n    <texture name="pattern_{name}" type="2d" {spec}/>' for name, (spec, _) in
                       _TEXTURES.items())
    nominal = {"table": config.table.rgba, "floor": (0.55, 0.57, 0.6, 1.0)}
    materials = []
    for surface, rgba in nominal.items():
        for texture in SURFACE_TEXTURES:
            name = surface_material(surface, texture)
            if texture == "plain":
                materials.append(f'\n    <material name="{name}" rgba="{_v(rgba)}" reflectance="0"/>')
            else:
                repeat = _TEXTURES[texture][1]
                materials.append(f'\n    <material name="{name}" texture="pattern_{texture}" texuniform="true" '
                                 f'texrepeat="{repeat} {repeat}" rgba="{_v(rgba)}" reflectance="0"/>')
    return textures + "".join(materials)


def build_scene_xml(config: SimConfig) -> str:
    """The complete MJCF model as a string."""
    physics, base, grip, camera, objects = config.physics, config.base, config.gripper, config.camera, config.objects
    bx, by, bz = base.half_extents
    chassis_z = base.ground_clearance + bz
    chassis_top = base.ground_clearance + 2 * bz
    mast_half = (camera.position[2] - chassis_top) / 2
    arm_ctrl = "".join(
        f'\n    <position name="{name}" joint="{name}" kp="{kp}" kv="{kv}" ctrlrange="{_v(rng)}" '
        f'forcerange="{-tau} {tau}"/>'
        for name, kp, kv, rng, tau in zip(
            ARM_JOINTS, config.arm.kp, config.arm.kv, config.arm.joint_ranges, config.arm.max_torque
        )
    )
    finger_ctrl = "".join(
        f'\n    <position name="{name}" joint="{name}" kp="{grip.kp}" kv="{grip.kv}" '
        f'ctrlrange="0 {grip.finger_travel}" forcerange="{-grip.max_force} {grip.max_force}"/>'
        for name in FINGER_JOINTS
    )
    return f"""<mujoco model="rt1_mobile_manipulator">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{physics.timestep_s}" integrator="implicitfast" cone="elliptic" impratio="{physics.impratio}"
          jacobian="dense"/>
  <visual>
    <global offwidth="{camera.max_render_size}" offheight="{camera.max_render_size}"/>
    <quality shadowsize="{camera.shadow_map_size}"/>
    <headlight ambient="{_v([HEADLIGHT_AMBIENT] * 3)}" diffuse="{_v([HEADLIGHT_DIFFUSE] * 3)}" specular="0.1 0.1 0.1"/>
  </visual>
  <asset>{_surface_assets(config)}
  </asset>
  <default>
    <default class="scene">
      <geom contype="1" conaffinity="1" friction="{_v(config.table.friction)}"/>
    </default>
    <default class="object">
      <geom contype="1" conaffinity="1" condim="4" mass="{objects.mass}" friction="{_v(objects.friction)}"/>
    </default>{receptacle_default_xml(config)}
    <default class="arm">
      <geom contype="2" conaffinity="1" rgba="{_v(config.arm.rgba)}"/>
    </default>
    <default class="pad">
      <geom type="box" size="{_v(grip.pad_half_extents)}" contype="2" conaffinity="1" condim="4"
            friction="{_v(grip.friction)}" mass="{grip.pad_mass}" rgba="{_v(grip.rgba)}"/>
    </default>{cabinet_default_xml(config)}
  </default>
  <worldbody>
    <light name="{SUN_LIGHT}" pos="0.5 -0.5 3" dir="{_v(SUN_DIRECTION)}" directional="true"
           diffuse="{_v([SUN_DIFFUSE] * 3)}" castshadow="true"/>
    <geom name="{FLOOR_GEOM}" class="scene" type="plane" size="0 0 0.05"
          material="{surface_material("floor", "checker")}"/>{_table_xml(config)}
    <body name="{BASE_BODY}" pos="0 0 0">
      <joint name="base_x" type="slide" axis="1 0 0"/>
      <joint name="base_y" type="slide" axis="0 1 0"/>
      <joint name="base_yaw" type="hinge" axis="0 0 1"/>
      <geom name="chassis" type="box" size="{bx} {by} {bz}" pos="0 0 {chassis_z}" mass="{base.mass}"
            contype="4" conaffinity="1" rgba="{_v(base.rgba)}"/>
      <geom name="mast" type="cylinder" size="{base.mast_radius} {mast_half}" contype="0" conaffinity="0"
            pos="{base.mast_position[0]} {base.mast_position[1]} {chassis_top + mast_half}" rgba="{_v(base.rgba)}"/>
      <camera name="{camera.name}" pos="{_v(camera.position)}" xyaxes="{_camera_axes(camera.pitch_deg)}"
              fovy="{camera.fovy_deg}"/>{_arm_xml(config)}
    </body>{_objects_xml(config)}{receptacles_xml(config)}{cabinet_xml(config)}
  </worldbody>
  <actuator>
    <velocity name="base_x" joint="base_x" kv="{base.linear_gain}"
              forcerange="{-base.max_force} {base.max_force}"/>
    <velocity name="base_y" joint="base_y" kv="{base.linear_gain}"
              forcerange="{-base.max_force} {base.max_force}"/>
    <velocity name="base_yaw" joint="base_yaw" kv="{base.angular_gain}"
              forcerange="{-base.max_torque} {base.max_torque}"/>{arm_ctrl}{finger_ctrl}
  </actuator>
</mujoco>
"""
