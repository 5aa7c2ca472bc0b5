"""MobileManipulatorSim: the embedded MuJoCo simulator behind the sim node, usable without ROS.

Command semantics (one RT-1 action per control period, ``physics.control_rate_hz``):

* ``apply_action(base_twist, arm_delta, gripper)`` replaces the command in force.
* The **base twist** (vx, vy in m/s, yaw rate in rad/s, base frame) is a velocity: it stays in force until the next
  command (a zero twist stops the base).
* The **arm delta** (x, y, z in m and roll, pitch, yaw in rad, base frame) moves the end-effector *target* by exactly
  that amount, spread linearly over the next control period (the target moves at ``delta / period`` from the
  ``apply_action`` call and stops after one period). A command held longer than a period therefore does not keep the
  arm moving; calling ``apply_action`` once per period and ``advance(period)`` moves the target by the delta each
  step. A new command that arrives before the previous delta is used up first adds the unused rest to the target
  (at most one IK tick's worth when commands come once per period), so every delta counts in full.
  Rotation deltas are applied as extrinsic rotations about the base axes, R <- Rz(yaw) Ry(pitch) Rx(roll) R, in
  per-IK-tick slices (equal to the full-step rotation to first order in the angles). All three axes are honoured.
* The **gripper** closedness (0 open, 1 closed) sets both finger position targets at once.

Arm control: the Cartesian target (position + rotation matrix, base frame) is advanced at ``ik_rate_hz`` and solved
into joint targets by damped-least-squares differential IK on the grip site's Jacobian (``mj_jacSite``),
``dq = J^T (J J^T + lambda^2 I)^-1 e`` with ``e = [p* - p; w * log(R* R^T)]``. The IK runs on a separate kinematic
MjData whose base sits at the origin, so its world frame *is* the base frame; iterating from the previous joint target
(not the measured joints) keeps the solution smooth and independent of tracking lag and contact forces. Position
actuators then track the joint targets. DLS was chosen over a pseudo-inverse for its bounded joint steps near
singularities, and over an optimisation-based IK because the target moves only millimetres per tick. The target is
kept inside ``arm.workspace_*`` and within ``arm.max_target_lead`` of the measured end effector, so pressing against
the table or an object cannot wind the target up.

Determinism: a reset rebuilds the whole state from the seed; IK ticks are aligned to absolute physics steps, so the
same seed and the same command sequence give the same trajectory however ``advance`` is chunked.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

# The GL backend is fixed when mujoco is imported: headless EGL unless the caller chose otherwise.
os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402

from rt1_ros.sim.cabinet import (  # noqa: E402
    CABINET_BODY,
    drawer_joint,
    handle_bar_geom,
    handle_body,
)
from rt1_ros.sim.conditions import SURFACE_TEXTURES  # noqa: E402
from rt1_ros.sim.config import SimConfig  # noqa: E402
from rt1_ros.sim.receptacles import receptacle_geometries  # noqa: E402
from rt1_ros.sim.scene import (  # noqa: E402
    ARM_JOINTS,
    BASE_BODY,
    BASE_JOINTS,
    FINGER_JOINTS,
    FLOOR_GEOM,
    GRIP_SITE,
    HEADLIGHT_AMBIENT,
    HEADLIGHT_DIFFUSE,
    LEFT_PAD_GEOM,
    RIGHT_PAD_GEOM,
    SUN_DIFFUSE,
    SUN_DIRECTION,
    SUN_LIGHT,
    TABLE_GEOM,
    TABLE_LEG_GEOMS,
    CAN_SHAPE,
    all_object_specs,
    build_scene_xml,
    object_half_height,
    object_specs,
    surface_material,
)
from rt1_ros.sim.tasks import SceneState, Task, check_success, sample_task  # noqa: E402
from rt1_ros.sim.variation import SceneLook, camera_axes, sample_look, tilted_direction  # noqa: E402

LOOK_ATTEMPTS = 5  # scene looks drawn per reset before giving up on a layout with its target in view
# Gripper pointing straight down: site x along base +x, site z along base -z.
DOWNWARD_GRIP = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Odometry:
    x: float  # world
    y: float
    yaw: float
    vx: float  # base frame
    vy: float
    yaw_rate: float


@dataclass(frozen=True)
class JointStates:
    names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray


def rotation_about_axes(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rz(yaw) @ Ry(pitch) @ Rx(roll), (3, 3)."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) taking ``current`` to ``target``, both (3, 3), in their common frame."""
    q_target, q_current, q_error = np.zeros(4), np.zeros(4), np.zeros(4)
    mujoco.mju_mat2Quat(q_target, target.reshape(9))
    mujoco.mju_mat2Quat(q_current, current.reshape(9))
    mujoco.mju_negQuat(q_current, q_current)
    mujoco.mju_mulQuat(q_error, q_target, q_current)
    if q_error[0] < 0:  # shortest way round
        q_error = -q_error
    velocity = np.zeros(3)
    mujoco.mju_quat2Vel(velocity, q_error, 1.0)
    return velocity


class MobileManipulatorSim:
    def __init__(self, config: SimConfig | None = None, condition: str | None = None) -> None:
        """``condition``: the evaluation condition resets draw from unless they name another (default: the sim
        node's, config/sim.yaml ``node.condition``)."""
        self.config = config or SimConfig.from_yaml()
        self.condition = self.config.condition(condition or self.config.node.condition).name
        self.model = mujoco.MjModel.from_xml_string(build_scene_xml(self.config))
        self.data = mujoco.MjData(self.model)
        self._ik_data = mujoco.MjData(self.model)
        model = self.model

        def joint_id(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

        self._base_qpos = np.array([model.jnt_qposadr[joint_id(n)] for n in BASE_JOINTS])
        self._base_dof = np.array([model.jnt_dofadr[joint_id(n)] for n in BASE_JOINTS])
        self._arm_qpos = np.array([model.jnt_qposadr[joint_id(n)] for n in ARM_JOINTS])
        self._arm_dof = np.array([model.jnt_dofadr[joint_id(n)] for n in ARM_JOINTS])
        self._finger_qpos = np.array([model.jnt_qposadr[joint_id(n)] for n in FINGER_JOINTS])
        self._finger_dof = np.array([model.jnt_dofadr[joint_id(n)] for n in FINGER_JOINTS])
        self._state_joints = ARM_JOINTS + FINGER_JOINTS

        def actuator_id(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)

        self._base_act = np.array([actuator_id(n) for n in BASE_JOINTS])
        self._arm_act = np.array([actuator_id(n) for n in ARM_JOINTS])
        self._finger_act = np.array([actuator_id(n) for n in FINGER_JOINTS])
        self._site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, GRIP_SITE)
        self._base_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, BASE_BODY)
        self._pad_geoms = (
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, LEFT_PAD_GEOM),
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, RIGHT_PAD_GEOM),
        )
        self._camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, self.config.camera.name)
        self._specs = {spec.name: spec for spec in all_object_specs(self.config)}
        # A scene look shades the cubes and cylinders (its draws are what they were before cans existed); the cans
        # get their shades from a generator of their own.
        self._shaded_by_look = tuple(spec.name for spec in object_specs(self.config))
        self._cans = tuple(name for name, spec in self._specs.items() if spec.shape == CAN_SHAPE)
        self._can_bodies = {name: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) for name in self._cans}
        self._object_qpos = {
            name: model.jnt_qposadr[joint_id(name)] for name in self._specs
        }
        self._object_geom = {name: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name) for name in self._specs}
        self._robot_geom = model.body_rootid[model.geom_bodyid] == self._base_body  # (ngeom,) bool
        # Receptacles are mocap bodies (rt1_ros.sim.receptacles): a reset writes their pose into data.mocap_*.
        self._receptacle_mocap = {
            geometry.name: int(model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, geometry.name)])
            for geometry in receptacle_geometries(self.config)}
        # The cabinet (rt1_ros.sim.cabinet): a static body placed per episode, drawers on slide joints. A handle is
        # a drawer task's target, read like an object (position, visibility) through its body and its bar geom.
        drawers = self.config.cabinet.drawers
        self._cabinet_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, CABINET_BODY)
        self._drawer_qpos = {d: model.jnt_qposadr[joint_id(drawer_joint(d))] for d in drawers}
        self._handle_body = {handle_body(d): mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, handle_body(d))
                             for d in drawers}
        self._handle_geom = {handle_body(d): mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, handle_bar_geom(d))
                             for d in drawers}
        cabinet_bodies = {b for b in range(model.nbody) if self._in_subtree(b, self._cabinet_body)}
        self._cabinet_geoms = frozenset(g for g in range(model.ngeom) if model.geom_bodyid[g] in cabinet_bodies)
        arm_mount = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "arm_mount")
        self._arm_geoms = frozenset(g for g in range(model.ngeom)
                                    if self._in_subtree(int(model.geom_bodyid[g]), arm_mount))

        def geom_id(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)

        # What a scene look changes (rt1_ros.sim.variation), and the nominal values it changes them from.
        self._surface_geoms = {"table": [geom_id(n) for n in (TABLE_GEOM, *TABLE_LEG_GEOMS)],
                               "floor": [geom_id(FLOOR_GEOM)]}
        self._surface_materials = {
            (surface, texture): mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL,
                                                  surface_material(surface, texture))
            for surface in self._surface_geoms for texture in SURFACE_TEXTURES}
        self._sun = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_LIGHT, SUN_LIGHT)
        self._object_rgba = {name: model.geom_rgba[geom].copy() for name, geom in self._object_geom.items()}
        self.look: SceneLook | None = None
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._home_joints = self._solve_ik(
            np.zeros(len(ARM_JOINTS)), np.asarray(self.config.arm.home_position), DOWNWARD_GRIP, iterations=300
        )
        self._time_offset = 0.0
        self.task: Task | None = None
        self.reset(None, 0)

    def _in_subtree(self, body: int, root: int) -> bool:
        while body > 0:
            if body == root:
                return True
            body = int(self.model.body_parentid[body])
        return False

    # ------------------------------------------------------------------ episode
    def reset(self, task_family: str | None, seed: int, condition: str | None = None) -> Task:
        """Start an episode of ``task_family`` (None: drawn from the seed among ``tasks.default_families``) laid out
        from ``seed`` under ``condition`` (None: this simulator's); returns the task.

        The seed fixes everything, through separate generators: the layout (and object count), the instruction's
        wording, and the scene look (`rt1_ros.sim.variation`), so one never shifts another."""
        # Drawn in tasks.families' order whatever default_families' order, so a seed keeps its family.
        families = [f for f in self.config.tasks.family_names if f in self.config.tasks.default_families]
        rng = np.random.default_rng(seed)
        family = task_family or families[rng.integers(len(families))]
        self.config.tasks.family(family)  # unknown names fail here, before any state changes
        chosen = self.config.condition(condition or self.condition)
        self._time_offset = self.sim_time
        count = int(rng.integers(chosen.object_count[0], chosen.object_count[1] + 1))
        looks = np.random.default_rng([seed, 2])
        words = np.random.default_rng([seed, 1])
        self._shade_cans(chosen, np.random.default_rng([seed, 3]))
        task = None
        # A camera mounting that cannot see the target from where the episode starts (a steep, narrow camera and the
        # far start of move_near) is drawn again: an episode starts with its target in view.
        for _ in range(LOOK_ATTEMPTS):
            self._apply_look(sample_look(self.config, self.config.appearance(chosen.appearance),
                                         self.config.camera_variation(chosen.camera), len(self._shaded_by_look),
                                         looks))
            task = self._visible_layout(family, seed, rng, chosen, count, words)
            if task is not None:
                break
        if task is None:
            raise RuntimeError(f"no visible {family} layout found for seed {seed} ({chosen.name})")
        self.task = task
        settle_steps = max(1, round(self.config.physics.settle_time_s / self.model.opt.timestep))
        mujoco.mj_step(self.model, self.data, nstep=settle_steps)
        self._episode_start_time = self.data.time
        self._rest_positions = {name: self.object_position(name) for name in (*self._specs, *self._handle_body)}
        self._reset_base_yaw = self.odometry().yaw
        return task

    def _visible_layout(self, family: str, seed: int, rng: np.random.Generator, condition, count: int,
                        words: np.random.Generator) -> Task | None:
        """Lay out layouts drawn from ``rng`` until one shows its target to the camera; None if none does."""
        for _ in range(self.config.tasks.max_resample_attempts):
            task = sample_task(self.config, family, seed, rng, condition, count, words)
            if task is None:
                continue
            self._lay_out(task)
            # A receptacle, or the drawer an object goes into, is in view too.
            if self.target_visible(task.target_name) and (task.receptacle is None or
                                                          self.in_view(task.receptacle)) and \
                    (task.drawer is None or self.in_view(handle_body(task.drawer))):
                return task
        return None

    def _apply_look(self, look: SceneLook) -> None:
        """Materials, lights, object shades and the head camera's mounting, as ``look`` says."""
        model = self.model
        for surface, chosen in (("table", look.table), ("floor", look.floor)):
            material = self._surface_materials[(surface, chosen.texture)]
            model.geom_matid[self._surface_geoms[surface]] = material
            model.mat_rgba[material] = (*chosen.rgb, 1.0)
        model.light_diffuse[self._sun] = SUN_DIFFUSE * look.light_intensity
        model.light_dir[self._sun] = tilted_direction(np.asarray(SUN_DIRECTION), *look.light_tilt)
        model.vis.headlight.ambient[:] = HEADLIGHT_AMBIENT * look.light_intensity
        model.vis.headlight.diffuse[:] = HEADLIGHT_DIFFUSE * look.light_intensity
        for name, shade in zip(self._shaded_by_look, look.object_shade, strict=True):
            self._shade(name, np.asarray(shade))
        camera = self.config.camera
        pitch, yaw, roll = look.camera_angles_deg
        model.cam_pos[self._camera] = np.asarray(camera.position) + np.asarray(look.camera_offset_m)
        quaternion = np.zeros(4)
        mujoco.mju_mat2Quat(quaternion, camera_axes(camera.pitch_deg + pitch, yaw, roll).reshape(9))
        model.cam_quat[self._camera] = quaternion
        model.cam_fovy[self._camera] = camera.fovy_deg + look.camera_fovy_offset_deg
        self.look = look

    def _shade(self, name: str, shade: np.ndarray) -> None:
        rgba = self._object_rgba[name]
        self.model.geom_rgba[self._object_geom[name]] = (*np.clip(rgba[:3] + shade, 0.0, 1.0), rgba[3])

    def _shade_cans(self, condition, rng: np.random.Generator) -> None:
        """The cans' colour shades, as a look shades the other objects (rt1_ros.sim.variation)."""
        limit = self.config.appearance(condition.appearance).object_shade
        for name, shade in zip(self._cans, rng.uniform(-limit, limit, size=(len(self._cans), 3))):
            self._shade(name, shade)

    def _lay_out(self, task: Task) -> None:
        """Write the task's initial state into data (base, arm at home, objects) and recompute kinematics."""
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        data.qpos[self._base_qpos] = task.base_start
        data.qpos[self._arm_qpos] = self._home_joints
        placed = set()
        for placement in task.placements:
            adr = self._object_qpos[placement.spec.name]
            yaw_quat = (math.cos(placement.yaw / 2), 0.0, 0.0, math.sin(placement.yaw / 2))
            if placement.lying:  # on its side, its axis along the yaw: rotated a quarter turn about its own y
                z = self.config.table.height + self.config.cans.radius
                quat = np.zeros(4)
                mujoco.mju_mulQuat(quat, np.array(yaw_quat), np.array([math.cos(math.pi / 4), 0.0,
                                                                       math.sin(math.pi / 4), 0.0]))
            else:
                z = self.config.table.height + object_half_height(self.config, placement.spec.shape) \
                    + placement.support_height
                quat = yaw_quat
            data.qpos[adr:adr + 3] = (placement.x, placement.y, z)
            data.qpos[adr + 3:adr + 7] = quat
            placed.add(placement.spec.name)
        # Unused objects keep their parking spots from the model's qpos0 (restored by mj_resetData), unused
        # receptacles theirs from the model's body positions (mocap_pos, also restored); parked cans float there,
        # placed ones fall.
        for name, body in self._can_bodies.items():
            model.body_gravcomp[body] = 0.0 if name in placed else 1.0
        self._place_cabinet(task)
        if task.receptacle is not None:
            x, y, yaw = task.receptacle_pose
            mocap = self._receptacle_mocap[task.receptacle]
            data.mocap_pos[mocap] = (x, y, self.config.table.height)
            data.mocap_quat[mocap] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        self._joint_targets = self._home_joints.copy()
        self._target_position = np.asarray(self.config.arm.home_position, dtype=float).copy()
        self._target_rotation = DOWNWARD_GRIP.copy()
        self._base_twist = np.zeros(3)
        self._arm_delta = np.zeros(6)
        self._delta_fraction_left = 0.0
        self._gripper = 0.0
        self._physics_steps_to_tick = 0
        self._write_controls()
        mujoco.mj_forward(model, data)

    def _place_cabinet(self, task: Task) -> None:
        """Put the cabinet where a task with one says (its body pose; drawers open as sampled), else park it."""
        model, data = self.model, self.data
        cabinet = task.cabinet
        if cabinet is None:
            model.body_pos[self._cabinet_body] = self.config.cabinet.parking_position
            model.body_quat[self._cabinet_body] = (1.0, 0.0, 0.0, 0.0)
            return  # drawers closed: qpos0, restored by mj_resetData
        table_top = self.config.table.height
        model.body_pos[self._cabinet_body] = (cabinet.x, cabinet.y, table_top)
        model.body_quat[self._cabinet_body] = (math.cos(cabinet.yaw / 2), 0.0, 0.0, math.sin(cabinet.yaw / 2))
        for drawer, travel in zip(self.config.cabinet.drawers, cabinet.drawer_travel):
            data.qpos[self._drawer_qpos[drawer]] = travel

    # ------------------------------------------------------------------ commands
    def apply_action(self, base_twist, arm_delta, gripper: float) -> None:
        """Replace the command in force: base twist (3,), arm delta (6,), gripper closedness (see module doc)."""
        base_twist = np.asarray(base_twist, dtype=float).reshape(3)
        arm_delta = np.asarray(arm_delta, dtype=float).reshape(6)
        if not (np.all(np.isfinite(base_twist)) and np.all(np.isfinite(arm_delta)) and math.isfinite(gripper)):
            raise ValueError("non-finite command")
        self.command_base(base_twist)
        self.command_arm(arm_delta, gripper)

    def command_base(self, base_twist) -> None:
        """Replace only the base twist (3,): vx, vy (m/s), yaw rate (rad/s), base frame; clipped to the limits."""
        base_twist = np.asarray(base_twist, dtype=float).reshape(3)
        if not np.all(np.isfinite(base_twist)):
            raise ValueError("non-finite base twist")
        base = self.config.base
        limits = np.array([base.max_linear_speed, base.max_linear_speed, base.max_angular_speed])
        self._base_twist = np.clip(base_twist, -limits, limits)

    def command_arm(self, arm_delta, gripper: float) -> None:
        """Replace only the arm command: a delta (6,) for the next control period and the gripper closedness."""
        arm_delta = np.asarray(arm_delta, dtype=float).reshape(6)
        if not (np.all(np.isfinite(arm_delta)) and math.isfinite(gripper)):
            raise ValueError("non-finite arm command")
        self._finish_arm_delta()
        self._arm_delta = arm_delta
        self._delta_fraction_left = 1.0
        self._gripper = float(np.clip(gripper, 0.0, 1.0))

    def _finish_arm_delta(self) -> None:
        """Move the target by what is left of the current delta, so every commanded delta counts in full.

        A control period need not hold a whole number of IK ticks (1/3 s at 50 Hz), so a new command can arrive a
        fraction of a tick before the previous delta is used up.
        """
        if self._delta_fraction_left > 0.0:
            rest = self._arm_delta * self._delta_fraction_left
            self._target_position = self._target_position + rest[:3]
            self._target_rotation = rotation_about_axes(*rest[3:]) @ self._target_rotation
            self._delta_fraction_left = 0.0

    def command_gripper(self, gripper: float) -> None:
        """Replace only the gripper closedness; an arm delta in progress continues."""
        if not math.isfinite(gripper):
            raise ValueError("non-finite gripper command")
        self._gripper = float(np.clip(gripper, 0.0, 1.0))

    def stop(self) -> None:
        """Zero twist, no arm motion; the gripper keeps its closedness (dropping a held object is not 'stopping')."""
        self.apply_action(np.zeros(3), np.zeros(6), self._gripper)
        self._delta_fraction_left = 0.0

    def advance(self, seconds: float) -> None:
        """Step physics for ``seconds`` (rounded to whole physics steps) under the command in force."""
        remaining = max(0, round(seconds / self.model.opt.timestep))
        steps_per_tick = self.config.physics.physics_steps_per_ik
        while remaining > 0:
            if self._physics_steps_to_tick == 0:
                self._control_tick(steps_per_tick * self.model.opt.timestep)
                self._physics_steps_to_tick = steps_per_tick
            chunk = min(remaining, self._physics_steps_to_tick)
            mujoco.mj_step(self.model, self.data, nstep=chunk)
            remaining -= chunk
            self._physics_steps_to_tick -= chunk

    def _control_tick(self, tick_s: float) -> None:
        fraction = min(tick_s / self.config.physics.control_period_s, self._delta_fraction_left)
        if fraction > 0.0:
            self._delta_fraction_left -= fraction
            step = self._arm_delta * fraction
            self._target_position = self._target_position + step[:3]
            self._target_rotation = rotation_about_axes(*step[3:]) @ self._target_rotation
        arm = self.config.arm
        target = np.clip(self._target_position, arm.workspace_min, arm.workspace_max)
        measured = self.end_effector_position()
        lead = target - measured
        lead_norm = float(np.linalg.norm(lead))
        if lead_norm > arm.max_target_lead:
            target = measured + lead * (arm.max_target_lead / lead_norm)
        self._target_position = target
        self._joint_targets = self._solve_ik(self._joint_targets, target, self._target_rotation, arm.ik_iterations)
        self._write_controls()

    def _write_controls(self) -> None:
        yaw = self.data.qpos[self._base_qpos[2]]
        vx, vy, wz = self._base_twist
        c, s = math.cos(yaw), math.sin(yaw)
        self.data.ctrl[self._base_act] = (c * vx - s * vy, s * vx + c * vy, wz)
        self.data.ctrl[self._arm_act] = self._joint_targets
        self.data.ctrl[self._finger_act] = self.config.gripper.finger_travel * (1.0 - self._gripper)

    def _solve_ik(self, joints: np.ndarray, position: np.ndarray, rotation: np.ndarray, iterations: int) -> np.ndarray:
        """DLS IK on the kinematic copy (base at the origin, so world == base frame); returns joint targets (6,)."""
        arm = self.config.arm
        model, data = self.model, self._ik_data
        lower = np.array([r[0] for r in arm.joint_ranges])
        upper = np.array([r[1] for r in arm.joint_ranges])
        weight = arm.ik_rotation_weight
        joints = joints.copy()
        for _ in range(iterations):
            data.qpos[self._arm_qpos] = joints
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            error = np.concatenate([
                position - data.site_xpos[self._site],
                weight * rotation_error(rotation, data.site_xmat[self._site].reshape(3, 3)),
            ])  # (6,)
            mujoco.mj_jacSite(model, data, self._jacp, self._jacr, self._site)
            jacobian = np.vstack([self._jacp[:, self._arm_dof], weight * self._jacr[:, self._arm_dof]])  # (6, 6)
            damped = jacobian @ jacobian.T + arm.ik_damping**2 * np.eye(6)
            step = jacobian.T @ np.linalg.solve(damped, error)
            largest = float(np.max(np.abs(step)))
            if largest > arm.ik_max_joint_step:
                step *= arm.ik_max_joint_step / largest
            joints = np.clip(joints + step, lower, upper)
        return joints

    # ------------------------------------------------------------------ state
    @property
    def sim_time(self) -> float:
        """Seconds of simulated time since construction; monotonic across resets (a ROS clock must not jump back)."""
        return self._time_offset + float(self.data.time)

    @property
    def episode_time(self) -> float:
        """Seconds since the current episode's first observation (the settling after a reset excluded)."""
        return float(self.data.time - self._episode_start_time)

    def odometry(self) -> Odometry:
        x, y, yaw = (float(v) for v in self.data.qpos[self._base_qpos])
        vxw, vyw, wz = (float(v) for v in self.data.qvel[self._base_dof])
        c, s = math.cos(yaw), math.sin(yaw)
        return Odometry(x, y, yaw, c * vxw + s * vyw, -s * vxw + c * vyw, wz)

    def joint_states(self) -> JointStates:
        qpos = np.concatenate([self._arm_qpos, self._finger_qpos])
        dof = np.concatenate([self._arm_dof, self._finger_dof])
        actuators = np.concatenate([self._arm_act, self._finger_act])
        return JointStates(
            names=self._state_joints,
            positions=self.data.qpos[qpos].copy(),
            velocities=self.data.qvel[dof].copy(),
            efforts=self.data.actuator_force[actuators].copy(),
        )

    def to_base_frame(self, world_point) -> np.ndarray:
        """World point (3,) -> base frame (3,)."""
        x, y, yaw = self.data.qpos[self._base_qpos]
        dx, dy = world_point[0] - x, world_point[1] - y
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([c * dx + s * dy, -s * dx + c * dy, world_point[2]])

    def to_world_frame(self, base_point) -> np.ndarray:
        """Base-frame point (3,) -> world (3,)."""
        x, y, yaw = self.data.qpos[self._base_qpos]
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([x + c * base_point[0] - s * base_point[1], y + s * base_point[0] + c * base_point[1],
                         base_point[2]])

    def end_effector_position(self) -> np.ndarray:
        """Measured grip-site position (3,) in the base frame."""
        return self.to_base_frame(self.data.site_xpos[self._site])

    def grip_site_world(self) -> np.ndarray:
        """Measured grip-site position (3,) in the world frame."""
        return np.asarray(self.data.site_xpos[self._site], dtype=float).copy()

    def end_effector_rotation(self) -> np.ndarray:
        """Measured grip-site rotation (3, 3) in the base frame."""
        yaw = self.data.qpos[self._base_qpos[2]]
        return rotation_about_axes(0.0, 0.0, -yaw) @ self.data.site_xmat[self._site].reshape(3, 3)

    def arm_target(self) -> tuple[np.ndarray, np.ndarray]:
        """The Cartesian target the arm servoes to: position (3,) and rotation (3, 3), base frame."""
        return self._target_position.copy(), self._target_rotation.copy()

    @property
    def gripper_command(self) -> float:
        """The gripper closedness in force (0 open, 1 closed)."""
        return self._gripper

    def gripper_opening(self) -> float:
        """Distance between the finger pads' inner faces (m)."""
        return float(np.sum(self.data.qpos[self._finger_qpos]))

    def object_position(self, name: str) -> np.ndarray:
        """World position (3,) of object ``name``, or of a drawer handle's bar centre."""
        if name in self._handle_body:
            return np.asarray(self.data.xpos[self._handle_body[name]], dtype=float).copy()
        adr = self._object_qpos[name]
        return self.data.qpos[adr:adr + 3].copy()

    def drawer_travel(self, drawer: str) -> float:
        """How far ``drawer`` is open (m; 0 closed, cabinet.travel fully open)."""
        return float(self.data.qpos[self._drawer_qpos[drawer]])

    def cabinet_pose(self) -> tuple[float, float, float]:
        """The cabinet's world x, y (the middle of its front face, on the table top) and yaw (its front's outward
        normal's heading)."""
        x, y, _ = self.model.body_pos[self._cabinet_body]
        w, _, _, z = self.model.body_quat[self._cabinet_body]
        return float(x), float(y), 2.0 * math.atan2(float(z), float(w))

    def arm_touches_cabinet(self) -> bool:
        """Some geom of the arm or the gripper is in contact with some geom of the cabinet."""
        for pair in self.data.contact.geom[: self.data.ncon]:
            a, b = int(pair[0]), int(pair[1])
            arm, cabinet = self._arm_geoms, self._cabinet_geoms
            if (a in arm and b in cabinet) or (b in arm and a in cabinet):
                return True
        return False

    def object_yaw(self, name: str) -> float:
        adr = self._object_qpos[name]
        w, x, y, z = self.data.qpos[adr + 3:adr + 7]
        return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))

    def receptacle_pose(self, name: str) -> tuple[float, float, float]:
        """World x, y, yaw of receptacle ``name``."""
        mocap = self._receptacle_mocap[name]
        w, x, y, z = self.data.mocap_quat[mocap]
        yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return float(self.data.mocap_pos[mocap][0]), float(self.data.mocap_pos[mocap][1]), yaw

    def rest_position(self, name: str) -> np.ndarray:
        """Where ``name`` rested after the reset settled (world)."""
        return self._rest_positions[name].copy()

    def is_grasped(self, name: str) -> bool:
        """Both finger pads are in contact with object ``name`` (a handle: with its bar)."""
        geom = self._object_geom[name] if name in self._object_geom else self._handle_geom[name]
        touching = set()
        for pair in self.data.contact.geom[: self.data.ncon]:
            if geom in pair:
                touching.update(int(g) for g in pair)
        return all(pad in touching for pad in self._pad_geoms)

    def object_axis(self, name: str) -> np.ndarray:
        """The object's own z axis (3,) in the world frame (a can's axis)."""
        adr = self._object_qpos[name]
        matrix = np.zeros(9)
        mujoco.mju_quat2Mat(matrix, self.data.qpos[adr + 3:adr + 7])
        return matrix.reshape(3, 3)[:, 2].copy()

    def robot_touches(self, name: str) -> bool:
        """Some geom of the robot (arm, hand, fingers, chassis) is in contact with object ``name``."""
        geom = self._object_geom[name]
        for pair in self.data.contact.geom[: self.data.ncon]:
            if geom in pair:
                other = int(pair[0] if pair[1] == geom else pair[1])
                if self._robot_geom[other]:
                    return True
        return False

    def scene_state(self) -> SceneState:
        task = self.task
        target = task.target_name
        odom = self.odometry()
        reference = task.reference.name if task.reference is not None else None
        drawer = self.task.drawer
        return SceneState(
            base_pose=(odom.x, odom.y, odom.yaw),
            object_position=self.object_position(target),
            object_rest_position=self.rest_position(target),
            reset_base_yaw=self._reset_base_yaw,
            grasped=self.is_grasped(target),
            # A free object's axis and contacts; a drawer task's target is a handle, which has neither.
            object_up=self.object_axis(target) if target in self._object_qpos else None,
            gripper_open=self._gripper < 0.5,
            gripper_touching=self.robot_touches(target) if target in self._object_geom else False,
            reference_position=self.object_position(reference) if reference else None,
            reference_rest_position=self.rest_position(reference) if reference else None,
            receptacle_pose=None if self.task.receptacle is None else self.receptacle_pose(self.task.receptacle),
            drawer_travel=self.drawer_travel(drawer) if drawer is not None else None,
            gripper_opening=self.gripper_opening(),
            arm_touches_cabinet=self.arm_touches_cabinet() if drawer is not None else False,
        )

    def success(self) -> bool:
        return check_success(self.config, self.task, self.scene_state())

    # ------------------------------------------------------------------ camera
    def _image_offsets(self, name: str) -> tuple[float, float] | None:
        """The object's centre as offsets from the image centre in half-image units (x right, y up; ±1 at the
        edges), or None when it is behind the camera."""
        camera = self.config.camera
        position = self.data.cam_xpos[self._camera]
        axes = self.data.cam_xmat[self._camera].reshape(3, 3)
        point = self.data.xpos[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)]
        in_camera = axes.T @ (point - position)  # camera looks along its -z
        depth = -in_camera[2]
        if depth <= 0:
            return None
        tan_half = math.tan(math.radians(float(self.model.cam_fovy[self._camera])) / 2)
        aspect = camera.width / camera.height
        return float(in_camera[0] / depth / (tan_half * aspect)), float(in_camera[1] / depth / tan_half)

    def image_position(self, name: str) -> np.ndarray:
        """(2,) where the object's centre is in the head camera image, as fractions of its width and height from the
        top-left corner (outside [0, 1]: out of view; (-1, -1) when behind the camera, finite so that a dataset
        accepts it). Occlusion is not considered."""
        offsets = self._image_offsets(name)
        if offsets is None:
            return np.full(2, -1.0)
        return np.array([(1.0 + offsets[0]) / 2.0, (1.0 - offsets[1]) / 2.0])

    def in_view(self, name: str) -> bool:
        """The body's origin projects inside the image (with margin); occlusion is not considered."""
        offsets = self._image_offsets(name)
        limit = 1.0 - self.config.camera.visibility_margin
        return offsets is not None and abs(offsets[0]) <= limit and abs(offsets[1]) <= limit

    def target_visible(self, name: str) -> bool:
        """The object's centre projects inside the image (with margin) and no other geom blocks the line of sight."""
        offsets = self._image_offsets(name)
        limit = 1.0 - self.config.camera.visibility_margin
        if offsets is None or abs(offsets[0]) > limit or abs(offsets[1]) > limit:
            return False
        position = self.data.cam_xpos[self._camera]
        point = self.data.xpos[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)]
        hit = np.array([-1], dtype=np.int32)
        mujoco.mj_ray(self.model, self.data, position, point - position, None, True, self._base_body, hit)
        geom = self._object_geom[name] if name in self._object_geom else self._handle_geom[name]
        return int(hit[0]) == geom

    def render(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Head camera image, (height, width, 3) uint8 RGB."""
        width = width or self.config.camera.width
        height = height or self.config.camera.height
        renderer = self._renderers.get((width, height))
        if renderer is None:
            renderer = mujoco.Renderer(self.model, height, width)
            self._renderers[(width, height)] = renderer
        renderer.update_scene(self.data, camera=self._camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
