"""The simulated robot's coordinate frames, as a real robot's /tf and /tf_static would give them (ROS-free).

    odom -> base_link                    dynamic: the base's planar pose (the simulator's odometry is exact)
    base_link -> arm_base_link           static: where the arm is mounted (the shoulder-pan axis foot)
    arm_base_link -> gripper             dynamic: the grip site (between the finger pads; z along the approach)
    base_link -> head_camera             static per episode (a reset may change the camera's mounting): the
                                         camera's optical frame (z forward, x right, y down, REP 103)

So the end effector in base_link is a chain of a static and a dynamic transform, as on a real arm whose
robot_state_publisher publishes its links. base_link is the planar base frame the arm deltas are expressed in
(`MobileManipulatorSim.end_effector_position`): its origin on the floor under the base, z up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

ARM_BASE_FRAME = "arm_base_link"
END_EFFECTOR_FRAME = "gripper"
ARM_MOUNT_BODY = "arm_mount"
# MuJoCo cameras look along their -z with y up; an optical frame looks along +z with y down.
MUJOCO_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class FrameTransform:
    """The pose of ``child`` in ``parent``: x_parent = R(rotation) x_child + translation; rotation (x, y, z, w)."""

    parent: str
    child: str
    translation: np.ndarray  # (3,)
    rotation: np.ndarray  # (4,) quaternion x, y, z, w


def quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> quaternion (x, y, z, w), w >= 0."""
    wxyz = np.zeros(4)
    mujoco.mju_mat2Quat(wxyz, np.asarray(rotation, dtype=float).reshape(9))
    if wxyz[0] < 0:
        wxyz = -wxyz
    return np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]])


def _wxyz_to_matrix(wxyz) -> np.ndarray:
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, np.asarray(wxyz, dtype=float))
    return matrix.reshape(3, 3)


def arm_mount(sim: MobileManipulatorSim) -> tuple[np.ndarray, np.ndarray]:
    """(R, p) of the arm's mounting in the base frame: the arm_mount body's placement with its joint at zero."""
    body = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, ARM_MOUNT_BODY)
    return _wxyz_to_matrix(sim.model.body_quat[body]), np.asarray(sim.model.body_pos[body], dtype=float).copy()


def end_effector_pose(sim: MobileManipulatorSim) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), quaternion (x, y, z, w)) of the measured grip site in the base frame."""
    return sim.end_effector_position(), quaternion_xyzw(sim.end_effector_rotation())


def static_transforms(sim: MobileManipulatorSim, base_frame: str, camera_frame: str) -> list[FrameTransform]:
    """base_link -> arm_base_link and base_link -> the camera's optical frame (this episode's mounting)."""
    mount_rotation, mount_position = arm_mount(sim)
    camera = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_CAMERA, sim.config.camera.name)
    camera_rotation = _wxyz_to_matrix(sim.model.cam_quat[camera]) @ MUJOCO_TO_OPTICAL
    return [
        FrameTransform(base_frame, ARM_BASE_FRAME, mount_position, quaternion_xyzw(mount_rotation)),
        FrameTransform(base_frame, camera_frame, np.asarray(sim.model.cam_pos[camera], dtype=float).copy(),
                       quaternion_xyzw(camera_rotation)),
    ]


def dynamic_transforms(sim: MobileManipulatorSim, odom_frame: str, base_frame: str) -> list[FrameTransform]:
    """odom -> base_link (odometry) and arm_base_link -> gripper (the measured grip site)."""
    odometry = sim.odometry()
    base = FrameTransform(odom_frame, base_frame, np.array([odometry.x, odometry.y, 0.0]),
                          np.array([0.0, 0.0, math.sin(odometry.yaw / 2), math.cos(odometry.yaw / 2)]))
    mount_rotation, mount_position = arm_mount(sim)
    rotation = mount_rotation.T @ sim.end_effector_rotation()
    position = mount_rotation.T @ (sim.end_effector_position() - mount_position)
    return [base, FrameTransform(ARM_BASE_FRAME, END_EFFECTOR_FRAME, position, quaternion_xyzw(rotation))]
