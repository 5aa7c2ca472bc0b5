"""Typed configuration of the embedded MuJoCo simulator (``config/sim.yaml``).

Every physical, camera, task and expert constant the simulator uses lives here, so a scene change is a YAML edit
and a code path never hides a number. Lengths are metres, angles radians unless a name says ``_deg``.
Frames: ``world`` is the fixed scene frame (the odometry frame); ``base`` is the robot base footprint (x forward,
y left, z up, origin on the floor under the base centre).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rt1_ros.configuration.parameter_spec import parameter
from rt1_ros.configuration.yaml_config import config_dir, load_dataclass
from rt1_ros.sim.conditions import AppearanceConfig, CameraVariation, ConditionConfig, SeedRangesConfig

Vec2 = tuple[float, float]
Vec3 = tuple[float, float, float]
Rgba = tuple[float, float, float, float]

# The task families whose target is a drawer's handle (config/sim.yaml `cabinet:`), not a coloured object.
DRAWER_FAMILIES = ("open_drawer", "close_drawer")


def _check_range(name: str, bounds: Vec2) -> None:
    if not bounds[0] <= bounds[1]:
        raise ValueError(f"{name}: need low <= high, got {bounds}")


@dataclass(frozen=True)
class PhysicsConfig:
    timestep_s: float
    control_rate_hz: float  # one policy action per control period (RT-1 runs at 3 Hz)
    ik_rate_hz: float  # how often the Cartesian arm target is advanced and re-solved into joint targets
    impratio: float  # >1 with elliptic cones makes friction stiffer, so grasped objects do not creep out
    settle_time_s: float  # physics time after a reset so objects come to rest before the first image

    def __post_init__(self) -> None:
        if self.timestep_s <= 0 or self.control_rate_hz <= 0 or self.ik_rate_hz <= 0:
            raise ValueError("timestep and rates must be positive")
        if self.ik_rate_hz * self.timestep_s > 1.0:
            raise ValueError("ik_rate_hz cannot exceed the physics rate")

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def physics_steps_per_ik(self) -> int:
        return max(1, round(1.0 / (self.ik_rate_hz * self.timestep_s)))


@dataclass(frozen=True)
class BaseConfig:
    half_extents: Vec3  # chassis box
    ground_clearance: float  # gap under the chassis; the base is driven, it never rests on the floor
    mass: float
    linear_gain: float  # velocity actuator kv, N per (m/s)
    angular_gain: float  # N m per (rad/s)
    max_force: float
    max_torque: float
    max_linear_speed: float  # commands are clipped to these
    max_angular_speed: float
    mast_radius: float
    mast_position: Vec2  # base frame x, y of the camera mast
    rgba: Rgba


@dataclass(frozen=True)
class ArmConfig:
    mount_position: Vec3  # base frame position of the shoulder pan axis foot
    shoulder_height: float  # pan axis foot to shoulder-lift axis
    upper_arm_length: float
    forearm_length: float  # elbow axis to wrist-pitch axis
    forearm_roll_offset: float  # elbow axis to the forearm-roll joint along the forearm
    wrist_length: float  # wrist-pitch axis to the wrist-roll (hand) frame, pointing down at zero pose
    link_radius: float
    link_mass: float
    joint_ranges: tuple[Vec2, Vec2, Vec2, Vec2, Vec2, Vec2]  # pan lift elbow forearm_roll wrist_pitch wrist_roll
    kp: tuple[float, float, float, float, float, float]
    kv: tuple[float, float, float, float, float, float]
    max_torque: tuple[float, float, float, float, float, float]
    armature: float
    damping: float
    home_position: Vec3  # base frame end-effector position after a reset (gripper pointing down)
    workspace_min: Vec3  # the Cartesian target is clipped to this base-frame box
    workspace_max: Vec3
    max_target_lead: float  # the target may run at most this far ahead of the measured end effector (m)
    ik_damping: float  # lambda of damped least squares
    ik_rotation_weight: float  # metres of position error one radian of orientation error is worth
    ik_iterations: int  # DLS iterations per IK tick
    ik_max_joint_step: float  # rad per iteration, keeps a far target from flinging the arm
    rgba: Rgba

    def __post_init__(self) -> None:
        for lo, hi in zip(self.workspace_min, self.workspace_max):
            _check_range("arm workspace", (lo, hi))
        for bounds in self.joint_ranges:
            _check_range("arm joint range", bounds)


@dataclass(frozen=True)
class GripperConfig:
    palm_half_extents: Vec3
    palm_mass: float
    finger_travel: float  # per finger, from closed (pads touching) to fully open
    pad_half_extents: Vec3  # x width, y thickness, z height
    pad_mass: float
    kp: float
    kv: float
    max_force: float  # per finger: the squeeze force on a grasped object
    friction: Vec3  # sliding, torsional, rolling
    rgba: Rgba


@dataclass(frozen=True)
class CameraConfig:
    name: str
    width: int
    height: int
    fovy_deg: float
    position: Vec3  # base frame
    pitch_deg: float  # downward tilt from horizontal, looking along base +x
    max_render_size: int  # offscreen buffer size: the largest width/height render() accepts
    shadow_map_size: int  # shadows show the gripper's height over the table; the map dominates render time
    visibility_margin: float  # fraction of the half image a target must stay inside of at episode start


@dataclass(frozen=True)
class TableConfig:
    center: Vec2  # world x, y of the top's centre
    half_extents: Vec2
    height: float  # top surface z
    thickness: float
    leg_radius: float
    friction: Vec3  # also the floor's
    rgba: Rgba


@dataclass(frozen=True)
class ColourConfig:
    name: str
    rgba: Rgba


@dataclass(frozen=True)
class ShapeWordsConfig:
    shape: str  # cube | cylinder | can
    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.words or self.words[0] != self.shape:
            raise ValueError(f"shape_words for {self.shape!r} must start with the shape's own name")


@dataclass(frozen=True)
class ObjectsConfig:
    colours: tuple[ColourConfig, ...]
    cube_half_size: float
    cylinder_radius: float
    cylinder_half_height: float
    mass: float
    friction: Vec3
    # The words an instruction may use for each shape (the templates' {object}); the first is the shape's name.
    shape_words: tuple[ShapeWordsConfig, ...]
    region_x: Vec2  # world x range of object centres
    region_y: Vec2
    min_separation: float  # centre-to-centre
    max_yaw: float  # |yaw| of each object, radians
    parking_origin: Vec3  # objects not in the episode wait here, far outside the camera's view
    parking_spacing: float

    def __post_init__(self) -> None:
        if len(self.colours) < 1:
            raise ValueError("need at least one colour")
        _check_range("objects.region_x", self.region_x)
        _check_range("objects.region_y", self.region_y)

    def words_for(self, shape: str) -> tuple[str, ...]:
        for entry in self.shape_words:
            if entry.shape == shape:
                return entry.words
        raise KeyError(f"objects.shape_words has no entry for {shape!r}")


@dataclass(frozen=True)
class CansConfig:
    """Cans: tall cylinders that stand on an end or lie on their side, one per colour of ``objects.colours``
    (bodies ``<colour>_can``). They take part only in the families that name them in ``families``; every other
    family's scene leaves them parked, so those scenes are exactly what they were before cans existed."""

    radius: float  # the fingers close across a diameter: at most gripper.finger_travel (8 cm opening) minus slack
    half_height: float
    mass: float
    friction: Vec3  # sliding, torsional, rolling
    condim: int  # 6 adds rolling friction, so that a can lying on its side does not roll away on its own
    # Parked cans sit inside the box the parked objects already span (objects.parking_origin, parking_spacing),
    # so the model's extent (which sizes the shadow map and the camera's depth range) is unchanged.
    parking_origin: Vec3
    parking_spacing: float
    families: tuple[str, ...]  # the families whose scenes may hold cans (targets or distractors)
    lying_max_yaw: float  # place_upright: |yaw| of a lying can's axis from world x, radians

    def __post_init__(self) -> None:
        if self.radius <= 0 or self.half_height <= self.radius:
            raise ValueError("cans: need 0 < radius < half_height (a can is taller than it is wide)")
        if self.condim not in (1, 3, 4, 6):
            raise ValueError("cans.condim must be one of MuJoCo's 1, 3, 4, 6")


@dataclass(frozen=True)
class ReceptacleKindConfig:
    """One receptacle body of the scene (`rt1_ros.sim.receptacles`): a bottom plate with low walls on it."""

    name: str  # the body name and the instruction's {receptacle} word
    shape: str  # "box": four straight walls (a tray); "ring": a regular polygon of walls (a bowl)
    inner_half_extents: Vec2  # box: half the inside length along its x and y; ring: the inside apothem, twice
    wall_height: float  # above the bottom plate's top
    rgba: Rgba

    def __post_init__(self) -> None:
        if self.shape not in ("box", "ring"):
            raise ValueError(f"receptacle {self.name!r}: shape must be 'box' or 'ring', got {self.shape!r}")
        if self.shape == "ring" and self.inner_half_extents[0] != self.inner_half_extents[1]:
            raise ValueError(f"receptacle {self.name!r}: a ring has one inside apothem; give it twice")
        if min(self.inner_half_extents) <= 0 or self.wall_height <= 0:
            raise ValueError(f"receptacle {self.name!r}: sizes must be positive")


@dataclass(frozen=True)
class ReceptaclesConfig:
    kinds: tuple[ReceptacleKindConfig, ...]
    wall_thickness: float
    bottom_thickness: float
    ring_sides: int  # walls of a "ring" receptacle
    friction: Vec3  # sliding, torsional, rolling
    # Contact softness of the walls and the plate (MuJoCo solref: time constant, damping ratio; solimp: impedance
    # width range and transition). Stiffer than MuJoCo's default (0.02 s, 0.9-0.95): a gripper pressing an object into
    # a wall with the arm's full servo force sinks its pads a quarter as deep (3 mm, not 9 mm, into a 12 mm wall).
    solref: Vec2
    solimp: Vec3
    region_x: Vec2  # world x range of the receptacle's centre
    region_y: Vec2
    max_yaw: float  # |yaw| of the receptacle, radians
    object_clearance: float  # other objects' centres stay this far outside the receptacle's outer footprint
    start_offset: float  # pick_from: the target's centre starts up to this far (per axis) from the inside centre
    parking_origin: Vec3  # receptacles not in the episode wait here, far outside the camera's view
    parking_spacing: float

    def __post_init__(self) -> None:
        names = [kind.name for kind in self.kinds]
        if not names or len(set(names)) != len(names):
            raise ValueError("receptacles.kinds need distinct names, and at least one")
        if self.ring_sides < 3:
            raise ValueError("receptacles.ring_sides must be at least 3")
        _check_range("receptacles.region_x", self.region_x)
        _check_range("receptacles.region_y", self.region_y)

    def kind(self, name: str) -> ReceptacleKindConfig:
        for kind in self.kinds:
            if kind.name == name:
                return kind
        raise KeyError(f"unknown receptacle {name!r}; known: {[kind.name for kind in self.kinds]}")


@dataclass(frozen=True)
class CabinetConfig:
    """The articulated cabinet of the drawer families (`rt1_ros.sim.cabinet`): a carcass fixed to the table with
    one drawer per entry of ``drawers`` stacked top to bottom, each on a slide joint with a bar handle. Geometry is in
    the cabinet frame: x out of the front (towards the robot), y to the cabinet's left seen from the front, z up,
    origin on the table top under the middle of the front face."""

    drawers: tuple[str, ...]  # the drawers' words, top to bottom (what instructions and Task.drawer name)
    depth: float  # carcass, front to back (outer)
    width: float  # carcass, side to side (outer)
    height: float  # carcass, bottom panel to top panel (outer), above the plinth
    plinth_height: float  # the carcass stands on a plinth this tall: the bottom handle clears the table
    panel_thickness: float  # carcass panels and the shelves between the drawers' slots
    front_thickness: float  # drawer fronts
    drawer_wall_thickness: float  # drawer sides, back and bottom: real walls that grasped objects collide with
    drawer_wall_height: float  # drawer sides and back, above the drawer's bottom
    clearance: float  # gap between a drawer and its slot on every side, so a drawer never rubs the carcass
    drawer_mass: float
    travel: float  # slide joint range [0, travel]: 0 closed, travel fully open
    damping: float  # N s/m on each slide: a released drawer stops instead of coasting
    frictionloss: float  # N on each slide: a drawer stays where it was left unless pushed or pulled
    armature: float  # kg added to each slide's inertia
    handle_length: float  # the bar, along the front's width
    handle_thickness: float  # square cross-section of the bar and its two posts
    handle_standoff: float  # bar centre in front of the drawer front's outer face
    handle_post_inset: float  # posts this far in from the bar's ends
    solref: Vec2  # contact time constant and damping ratio of every cabinet geom (stiff: walls are walls)
    solmix: float  # weight of the cabinet's solref against the other geom's (objects, pads) in a contact
    front_x: Vec2  # world x range of the front face (closed drawers) at reset
    center_y: Vec2  # world y range of the front face's middle
    yaw: Vec2  # range of the cabinet's yaw from facing world -x (towards the robot's start)
    parking_position: Vec3  # world; the cabinet waits here in episodes that do not use it (out of every view)
    carcass_rgba: Rgba
    front_rgba: Rgba
    handle_rgba: Rgba

    def __post_init__(self) -> None:
        if len(self.drawers) < 1 or len(set(self.drawers)) != len(self.drawers):
            raise ValueError("cabinet.drawers needs distinct names, and at least one")
        for name, bounds in (("front_x", self.front_x), ("center_y", self.center_y), ("yaw", self.yaw)):
            _check_range(f"cabinet.{name}", bounds)
        if self.slot_height <= self.drawer_wall_height + self.drawer_wall_thickness + 2 * self.clearance:
            raise ValueError("cabinet: the drawers' walls do not fit their slots")
        if self.handle_length > self.width - 2 * self.panel_thickness:
            raise ValueError("cabinet: handle longer than a drawer front")

    @property
    def slot_height(self) -> float:
        """Inner height of one drawer's slot between the shelves."""
        count = len(self.drawers)
        return (self.height - (count + 1) * self.panel_thickness) / count


@dataclass(frozen=True)
class StartPoseConfig:
    x: Vec2  # world x range of the base at reset
    y: Vec2
    yaw: Vec2


@dataclass(frozen=True)
class TaskFamilyConfig:
    name: str
    # str.format fields: colour, object (one of the shape's words), direction, receptacle (its kind's name), drawer
    # (a cabinet.drawers entry).
    # `templates` are the wordings the training data uses; `unseen_templates` never appear in it (the
    # `unseen_wordings` condition asks with them). `paraphrases` are more training-only wordings, which rt1-train
    # draws from with reword_paraphrases (episodes and the seen condition keep to `templates`).
    templates: tuple[str, ...]
    unseen_templates: tuple[str, ...]
    start_pose: StartPoseConfig
    max_steps: int  # control steps before an episode counts as failed
    target_max_abs_y: float  # |world y| of the target object: keeps pick/push targets inside arm reach
    paraphrases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.templates or not self.unseen_templates:
            raise ValueError(f"task family {self.name!r} needs templates and unseen_templates")
        trained = set(self.templates) | set(self.paraphrases)
        shared = sorted(trained & set(self.unseen_templates))
        if shared:
            raise ValueError(f"task family {self.name!r}: {shared} is both a training and an unseen template")
        fields = template_fields(self.templates)
        for paraphrase in self.paraphrases:
            extra = sorted(template_fields([paraphrase]) - fields)
            if extra:
                raise ValueError(f"task family {self.name!r}: paraphrase {paraphrase!r} names {extra}, which its "
                                 f"templates never fill (they use {sorted(fields)})")


def template_words(templates) -> set[str]:
    """The words of ``templates``, their {fields} left out, lower case (an apostrophe stays inside its word)."""
    return {word for template in templates
            for word in re.findall(r"[a-z']+", re.sub(r"\{\w+\}", " ", template.lower()))}


def template_fields(templates) -> set[str]:
    """The {fields} ``templates`` fill."""
    return {field for template in templates for field in re.findall(r"\{(\w+)\}", template)}


@dataclass(frozen=True)
class TasksConfig:
    families: tuple[TaskFamilyConfig, ...]
    lift_margin: float  # pick: object centre this far above its resting height while grasped
    near_distance: float  # move_near: base centre to object, horizontal
    push_margin: float  # push: lateral displacement in the reset base frame
    push_corridor_half_width: float  # push: no other object this close to the swept line
    drawer_open_fraction: float  # open_drawer: the drawer's travel exceeds this fraction of cabinet.travel
    drawer_closed_fraction: float  # close_drawer: the drawer's travel is below this fraction of cabinet.travel
    drawer_released_opening: float  # open_drawer: the fingers are at least this far apart (m), i.e. let go
    drawer_start_open: Vec2  # close_drawer: the named drawer starts open by this fraction range of its travel
    drawer_object_clearance: float  # drawer families: objects on the table keep this far (y) beside the cabinet
    place_drawers: tuple[str, ...]  # place_into_drawer: the drawers it asks for (cabinet.drawers entries)
    place_drawer_open: Vec2  # place_into_drawer: the named drawer starts open by this fraction range of its travel
    place_target_max_x: float  # place_into_drawer: the target's world x at most (the arm's reach from the start)
    place_cabinet_y: Vec2  # place_into_drawer: world y range of the cabinet's front middle
    max_resample_attempts: int
    # move_object_near: the carried object's centre this close (horizontal) to the reference's centre, resting on
    # the table within rest_height_tolerance of its resting height, and the reference moved less than
    # reference_moved_tolerance.
    object_near_distance: float
    rest_height_tolerance: float
    reference_moved_tolerance: float
    place_spot_clearance: float  # move_object_near: other objects' centres at least this far from the drop spot
    knocked_over_tilt: float  # knock_over: a can's axis more than this from vertical (rad)
    knock_corridor_half_width: float  # knock_over: no other object this close (sideways) to the push and fall line
    knock_fall_length: float  # knock_over: clear ground this far beyond the can's centre, where it falls
    upright_tilt: float  # place_upright: a can's axis less than this from vertical (rad)
    upright_clearance: float  # place_upright: other objects' centres at least this far from the lying can's centre
    # (family, colour_shape) pairs never asked for in the training data (rt1-generate skips those seeds); the
    # object still appears as a distractor and as the target of other families. rt1-train records the list in the
    # checkpoint, and the `unseen_pairs` condition asks for exactly these.
    held_out_pairs: tuple[str, ...]
    receptacle_clearance: float  # pick_from: the object's centre this far outside the receptacle's outer footprint
    # The families a reset that names none draws from, and the tools' families when no checkpoint says which it was
    # trained on (rt1-eval, the demo, rt1-generate): the shipped policy's. Other families are asked for by name.
    default_families: tuple[str, ...] = ("pick", "push", "move_near")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.default_families) - set(self.family_names))
        if unknown or not self.default_families:
            raise ValueError(f"tasks.default_families {list(self.default_families)}: needs at least one family, "
                             f"and {unknown} are not among tasks.families {list(self.family_names)}")
        # No paraphrase may borrow a word that only unseen templates use, any family's: the unseen_wordings
        # condition stays a test of words training never saw.
        unseen_only = self.unseen_only_words
        for family in self.families:
            for paraphrase in family.paraphrases:
                borrowed = sorted(template_words([paraphrase]) & unseen_only)
                if borrowed:
                    raise ValueError(f"task family {family.name!r}: paraphrase {paraphrase!r} uses {borrowed}, "
                                     "words that only unseen templates use")

    @property
    def unseen_only_words(self) -> set[str]:
        """Words some family's unseen templates use and no family's training templates do."""
        return template_words(t for f in self.families for t in f.unseen_templates) - \
            template_words(t for f in self.families for t in f.templates)

    def family(self, name: str) -> TaskFamilyConfig:
        for family in self.families:
            if family.name == name:
                return family
        raise KeyError(f"unknown task family {name!r}; known: {[f.name for f in self.families]}")

    @property
    def family_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.families)


@dataclass(frozen=True)
class ExpertConfig:
    max_arm_step: float  # m per control step while travelling
    max_descend_step: float  # m per control step close to the object
    max_rotation_step: float  # rad per control step
    position_tolerance: float  # the target counts as reached
    follow_tolerance: float  # the same, and the band a phase is recognised in, when a policy drives (DAgger)
    settle_tolerance: float  # the measured end effector counts as arrived
    hover_height: float  # above the table top, for travelling over objects
    pad_table_clearance: float  # finger pads stay this far above the table top
    close_steps: int  # control steps with the gripper closing before lifting
    lift_height: float
    push_clearance: float  # gap between pads and object before a push starts
    push_overshoot: float  # push beyond push_margin so the success check has slack
    base_max_speed: float  # m/s
    base_max_yaw_rate: float  # rad/s
    base_standoff: float  # move_near: park this far behind the object (base centre, along world x)
    base_table_clearance: float  # move_near: chassis front stays this far from the table edge
    base_position_tolerance: float
    base_yaw_tolerance: float
    base_yaw_gain: float  # yaw rate per rad of heading error
    tall_hover_height: float  # above the table top, for travelling over standing cans (the object families)
    place_distance: float  # move_object_near: the drop spot's centre distance from the reference
    release_height: float  # move_object_near: the carried object's bottom this far above the table when let go
    knock_height: float  # knock_over: the closed pads' centre this far below the can's top
    knock_clearance: float  # knock_over: gap between the pads and the can before the push starts
    knock_travel: float  # knock_over: how far past the can's near side the pads push
    knock_back_off: float  # knock_over: how far the pads draw back (base -x) after the push, before rising
    upright_lift: float  # place_upright: the can's centre this high above the table while it is turned upright
    upright_release: float  # place_upright: the standing can's bottom this far above the table when let go
    upright_back_off: float  # place_upright: how far the open hand slides back off the can before it rises
    turn_patience_steps: int  # place_upright: control steps a turned hand may take to settle before moving on
    release_gap: float  # place_into, pick_from: the held object's bottom this far above where it is let go
    release_steps: int  # control steps with the gripper opening before retreating
    spot_margin: float  # pick_from: the put-down spot keeps this much more clearance than the success check needs
    spot_grid_step: float  # pick_from: spacing of the candidate put-down spots searched on the table
    drawer_approach_standoff: float  # open/close_drawer: grip site this far in front of the handle or front first
    drawer_grasp_offset: float  # open_drawer: grip site this far in front of the handle bar's centre when closing
    drawer_pull: float  # open_drawer: pull the grasped handle this far along the drawer's axis
    drawer_release_steps: int  # open_drawer: control steps with the gripper opening before backing off
    drawer_back_off: float  # open/close_drawer: back away this far along the drawer's axis when done
    drawer_push_offset: float  # close_drawer: push this far beside the handle's middle (clear of the bar)
    drawer_push_overshoot: float  # close_drawer: push this far past the closed front (the joint stops the drawer)
    drawer_shut_travel: float  # close_drawer: the push ends once the drawer is open by less than this (m)
    drawer_carry_clearance: float  # place_into_drawer: the carried object's bottom this far over the drawer's front
    drawer_drop_offset: float  # place_into_drawer: let go this far short of the drawer's middle, on the arm's side


@dataclass(frozen=True)
class SimNodeConfig:
    """The sim node's ROS parameters (``rt1_ros.node.sim_node``): meaning, range and read-only flag here, defaults in
    config/sim.yaml ``node:``. Fixed at start unless read_only=False: changing them needs a new scene or publishers."""

    camera_width: int = parameter(description="camera image width, px (at most camera.max_render_size)",
                                  range=(16, 4096), read_only=True)
    camera_height: int = parameter(description="camera image height, px (at most camera.max_render_size)",
                                   range=(16, 4096), read_only=True)
    # lockstep publishes one image per control period instead
    camera_rate_hz: float = parameter(description="free run: images per second of sim time", range=(0.1, 120.0),
                                      read_only=True)
    image_reliability: str = parameter(description="camera publisher QoS", choices=("reliable", "best_effort"),
                                       read_only=True)
    state_rate_hz: float = parameter(description="/clock, odom and joint_states per second of sim time",
                                     range=(1.0, 500.0), read_only=True)
    real_time_factor: float = parameter(description="free run: sim seconds per wall second (1 = real time)",
                                        range=(0.01, 1000.0), read_only=False)
    lockstep: bool = parameter(description="advance one control period per policy action instead of running freely",
                               read_only=True)
    lockstep_timeout_s: float = parameter(description="lockstep: wall seconds to wait for rt1_action before a "
                                          "zero-command step", range=(0.01, 3600.0), read_only=False)
    lockstep_command_grace_s: float = parameter(description="lockstep: wall seconds to wait for the step's "
                                                "arm_command after its rt1_action", range=(0.0, 10.0),
                                                read_only=False)
    cmd_vel_timeout_s: float = parameter(description="free run: stop the base when cmd_vel is silent this long "
                                         "(sim s); 0 = never", range=(0.0, 3600.0), read_only=False)
    cmd_vel_stamped: bool = parameter(description="subscribe geometry_msgs/TwistStamped on cmd_vel instead of Twist",
                                      read_only=True)
    task_family: str = parameter(description="first episode's task family; empty = drawn from the seed among "
                                 "tasks.default_families",
                                 read_only=True)
    condition: str = parameter(description="evaluation condition every episode is drawn from (config/sim.yaml "
                               "conditions: scene appearance, camera mounting, objects, instruction wordings)",
                               read_only=True)
    seed: int = parameter(description="first episode's seed", range=(0, 2**32 - 1), read_only=True)
    max_episode_steps: int = parameter(description="control steps per episode; 0 = the family's budget from "
                                       "config/sim.yaml", range=(0, 1_000_000), read_only=True)
    publish_instruction: bool = parameter(description="publish each episode's instruction on `instruction` "
                                          "(latched)", read_only=True)
    next_episode_after_s: float = parameter(description="wall seconds after an episode is done to start the next "
                                            "(seed + 1, the same task family request); 0 = wait for reset_episode",
                                            range=(0.0, 3600.0), read_only=False)
    odom_frame: str = parameter(description="odometry frame id", read_only=True)
    base_frame: str = parameter(description="robot base frame id (odometry child frame; accepted arm_command frame)",
                                read_only=True)
    camera_frame: str = parameter(description="camera image frame id", read_only=True)


@dataclass(frozen=True)
class SimConfig:
    physics: PhysicsConfig
    base: BaseConfig
    arm: ArmConfig
    gripper: GripperConfig
    camera: CameraConfig
    table: TableConfig
    objects: ObjectsConfig
    cans: CansConfig
    receptacles: ReceptaclesConfig
    cabinet: CabinetConfig
    tasks: TasksConfig
    expert: ExpertConfig
    appearances: tuple[AppearanceConfig, ...]
    cameras: tuple[CameraVariation, ...]
    conditions: tuple[ConditionConfig, ...]
    seeds: SeedRangesConfig
    node: SimNodeConfig

    def __post_init__(self) -> None:
        for kind, entries in (("appearances", self.appearances), ("cameras", self.cameras),
                              ("conditions", self.conditions)):
            names = [e.name for e in entries]
            if len(set(names)) != len(names) or not names:
                raise ValueError(f"{kind} need distinct names, and at least one")
        appearances = {a.name for a in self.appearances}
        cameras = {c.name for c in self.cameras}
        for condition in self.conditions:
            if condition.appearance not in appearances or condition.camera not in cameras:
                raise ValueError(f"condition {condition.name}: unknown appearance {condition.appearance!r} or "
                                 f"camera {condition.camera!r}")
            if condition.object_count[1] > 2 * len(self.objects.colours):
                raise ValueError(f"condition {condition.name}: more objects than colour-shape pairs")
        if self.node.condition not in self.condition_names:
            raise ValueError(f"node.condition {self.node.condition!r} is not one of {self.condition_names}")
        unknown = sorted(set(self.tasks.place_drawers) - set(self.cabinet.drawers))
        if unknown or not self.tasks.place_drawers:
            raise ValueError(f"tasks.place_drawers: needs at least one of cabinet.drawers {list(self.cabinet.drawers)}"
                             f"{f', and {unknown} are not among them' if unknown else ''}")
        for pair in self.tasks.held_out_pairs:
            family, _, target = pair.partition(":")
            colours = {c.name for c in self.objects.colours}
            colour, _, shape = target.partition("_")
            if family in DRAWER_FAMILIES:  # their targets are the drawers' handles, DRAWER_drawer_handle
                if family in self.tasks.family_names and colour in self.cabinet.drawers and shape == "drawer_handle":
                    continue
                raise ValueError(f"tasks.held_out_pairs: {pair!r} is not FAMILY:DRAWER_drawer_handle")
            if family not in self.tasks.family_names or colour not in colours or shape not in ("cube", "cylinder",
                                                                                               "can"):
                raise ValueError(f"tasks.held_out_pairs: {pair!r} is not FAMILY:COLOUR_SHAPE")

    @property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.conditions)

    def condition(self, name: str) -> ConditionConfig:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(f"unknown condition {name!r}; known: {list(self.condition_names)}")

    def appearance(self, name: str) -> AppearanceConfig:
        return next(a for a in self.appearances if a.name == name)

    def camera_variation(self, name: str) -> CameraVariation:
        return next(c for c in self.cameras if c.name == name)

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> "SimConfig":
        return load_dataclass(cls, path or config_dir() / "sim.yaml")
