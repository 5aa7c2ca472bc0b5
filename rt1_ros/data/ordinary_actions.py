"""The 11-d RT-1 actions of a bag's episodes under a mapping: the control ticks of each episode, the frame each tick
sees, and what happened over each tick (arm deltas from the end-effector pose or commanded twists, the gripper from
joints or its command, the base from odometry or cmd_vel, the mode), as the `rt1_ros.data.rosbag_ordinary`
overview describes."""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, BASE_DIMS, CONTINUOUS_DIMS, GRIPPER_DIM, MODE_DIM,
                                                 NUM_ACTION_DIMS, ActionSpaceConfig)
from rt1_ros.data.bag_segments import BagImportError, Segment, Segmentation
from rt1_ros.data.ordinary_streams import BagStreams, Series, pose_frame
from rt1_ros.data.rosbag_mapping import BagMapping
from rt1_ros.data.transform_tree import TransformError, planar_pose, planar_twist, roll_pitch_yaw_delta


@dataclass
class PlannedEpisode:
    """One episode of a bag with its actions computed; its frames are read when it is written."""

    bag: Path
    segment: Segment
    tick_times_ns: np.ndarray  # (T,)
    image_indices: np.ndarray  # (T,) index into BagStreams.image_times of each tick's frame
    actions: np.ndarray  # (T, 11) float32


def _integrate(series: Series, start_ns: int, end_ns: int, timeout_ns: int) -> np.ndarray:
    """Integral over [start_ns, end_ns) of a piecewise-constant command (each value held until the next, or for
    ``timeout_ns`` when that is > 0), in value × seconds."""
    if not series.times:
        return np.zeros(6)
    total = np.zeros_like(series.values[0])
    for index in range(max(bisect_right(series.times, start_ns) - 1, 0), len(series.times)):
        sent = series.times[index]
        if sent >= end_ns:
            break
        held_until = series.times[index + 1] if index + 1 < len(series.times) else end_ns
        if timeout_ns > 0:
            held_until = min(held_until, sent + timeout_ns)
        begin, stop = max(sent, start_ns), min(held_until, end_ns)
        if stop > begin:
            total = total + series.values[index] * ((stop - begin) / 1e9)
    return total


class ActionComputer:
    """The 11-d actions of one bag's ticks under a mapping."""

    def __init__(self, streams: BagStreams, mapping: BagMapping, action_space: ActionSpaceConfig) -> None:
        self.streams, self.mapping, self.space = streams, mapping, action_space
        self.max_gap_ns = int(round(mapping.max_gap_s * 1e9))
        self.period_ns = int(round(1e9 / mapping.rate_hz))

    def _pose(self, time_ns: int) -> tuple[np.ndarray, np.ndarray]:
        arm = self.mapping.arm
        try:
            return self.streams.transforms.lookup(arm.frame, arm.end_effector_frame or pose_frame(arm.pose_topic),
                                                  time_ns)
        except TransformError as exc:
            raise BagImportError(f"{self.streams.bag}: arm: {exc}") from exc

    def arm(self, start_ns: int, end_ns: int) -> np.ndarray:
        arm = self.mapping.arm
        if arm.constant is not None:
            return np.full(6, arm.constant)
        if arm.twist_topic:
            return _integrate(self.streams.arm_twist, start_ns, end_ns, int(round(arm.command_timeout_s * 1e9)))
        delay = int(round(arm.delay_s * 1e9))
        rotation_0, position_0 = self._pose(start_ns + delay)
        rotation_1, position_1 = self._pose(end_ns + delay)
        return np.concatenate([position_1 - position_0, roll_pitch_yaw_delta(rotation_0, rotation_1)])

    def gripper(self, start_ns: int, end_ns: int) -> float:
        gripper = self.mapping.gripper
        if gripper.constant is not None:
            return gripper.constant
        if gripper.topic:
            sent = self.streams.gripper_command.between(start_ns, end_ns)
            value = sent[-1] if sent else self.streams.gripper_command.in_force(start_ns - 1)
            raw = float(value[0]) if value is not None else 0.0  # before any command: open
            return float(np.clip(raw * gripper.scale + gripper.offset, 0.0, 1.0))
        time_ns = end_ns + int(round(gripper.delay_s * 1e9))
        closedness = []
        for name, joint_range in gripper.joints:
            position = float(self._interpolate(self.streams.joints[name], time_ns)[0])
            closedness.append((position - joint_range.open) / (joint_range.closed - joint_range.open))
        value = float(np.clip(np.mean(closedness), 0.0, 1.0))
        if gripper.threshold is not None:
            value = 1.0 if value > gripper.threshold else 0.0
        return value

    def base(self, start_ns: int, end_ns: int) -> np.ndarray:
        base = self.mapping.base
        if base.constant is not None:
            return np.full(3, base.constant)
        if base.cmd_vel:
            sent = self.streams.base_command.between(start_ns, end_ns)
            value = sent[-1] if sent else self.streams.base_command.in_force(start_ns - 1)
            return np.zeros(3) if value is None else np.asarray(value, dtype=float)
        delay = int(round(base.delay_s * 1e9))
        if base.use == "twist":
            samples = self.streams.odometry_twist.between(start_ns + delay, end_ns + delay)
            if samples:
                return np.mean(samples, axis=0)
            return self._interpolate(self.streams.odometry_twist, (start_ns + end_ns) // 2 + delay)
        parent, child = self.streams.odometry_frames
        try:
            before = planar_pose(*self.streams.odometry_pose.lookup(parent, child, start_ns + delay))
            after = planar_pose(*self.streams.odometry_pose.lookup(parent, child, end_ns + delay))
        except TransformError as exc:
            raise BagImportError(f"{self.streams.bag}: base: {exc}") from exc
        return planar_twist(before, after, (end_ns - start_ns) / 1e9)

    def _interpolate(self, series: Series, time_ns: int) -> np.ndarray:
        try:
            return series.interpolate(time_ns, self.max_gap_ns)
        except BagImportError as exc:
            raise BagImportError(f"{self.streams.bag}: {exc}") from exc

    def actions(self, tick_times: np.ndarray) -> np.ndarray:
        space, mode = self.space, self.mapping.mode
        actions = np.zeros((len(tick_times), NUM_ACTION_DIMS))
        for k, start in enumerate(tick_times[:-1]):
            start, end = int(start), int(tick_times[k + 1])
            action = actions[k]
            action[ARM_DELTA_DIMS] = self.arm(start, end)
            action[GRIPPER_DIM] = self.gripper(start, end)
            action[BASE_DIMS] = self.base(start, end)
            if mode.constant is not None:
                moving = mode.constant == "base"
            else:
                moving = bool(np.any(np.abs(action[7:9]) > mode.linear_threshold)
                              or abs(action[9]) > mode.angular_threshold)
            if moving:
                action[ARM_DELTA_DIMS] = 0.0
                action[MODE_DIM] = space.mode_index("base")
            else:
                action[BASE_DIMS] = 0.0
                action[MODE_DIM] = space.mode_index("arm")
        last = actions[-1]
        last[GRIPPER_DIM] = actions[-2][GRIPPER_DIM] if len(actions) > 1 else 0.0
        last[MODE_DIM] = space.mode_index("terminate")
        return actions


def plan_episodes(streams: BagStreams, mapping: BagMapping, segmentation: Segmentation,
                  action_space: ActionSpaceConfig, min_steps: int = 2) -> list[PlannedEpisode]:
    """The episodes of one bag with their actions (BagImportError naming what is missing or out of range)."""
    images = streams.image_times
    origin = 0 if segmentation.absolute else images[0]
    period_ns = int(round(1e9 / mapping.rate_hz))
    computer = ActionComputer(streams, mapping, action_space)
    planned = []
    for number, segment in enumerate(segmentation.segments):
        start = images[0] if segment.start_s is None else origin + int(round(segment.start_s * 1e9))
        end = images[-1] if segment.end_s is None else origin + int(round(segment.end_s * 1e9))
        first = bisect_right(images, start - 1)
        last = bisect_right(images, end) - 1
        where = f"{streams.bag}: episode {number} ({segment.instruction!r})"
        if first > last:
            raise BagImportError(f"{where}: no image between {start / 1e9:.3f} and {end / 1e9:.3f} s on the "
                                 f"{mapping.clock} clock (images from {images[0] / 1e9:.3f} to "
                                 f"{images[-1] / 1e9:.3f} s)")
        tolerance = int(round(mapping.frame_tolerance_s * 1e9))
        ticks = np.arange(images[first], images[last] + tolerance + 1, period_ns, dtype=np.int64)
        if len(ticks) < min_steps:
            raise BagImportError(f"{where}: {len(ticks)} control tick(s) at {mapping.rate_hz:g} Hz; at least "
                                 f"{min_steps} are needed")
        indices = np.array([bisect_right(images, int(t) + tolerance) - 1 for t in ticks])
        try:
            actions = computer.actions(ticks)
        except BagImportError as exc:
            raise BagImportError(f"{where}: {exc}") from exc
        planned.append(PlannedEpisode(streams.bag, segment, ticks, indices, actions))
    return planned


def clip_actions(actions: np.ndarray, space: ActionSpaceConfig, clipped: np.ndarray) -> np.ndarray:
    continuous = actions[:, :CONTINUOUS_DIMS]
    clipped[:CONTINUOUS_DIMS] += ((continuous < space.low) | (continuous > space.high)).sum(axis=0)
    actions[:, :CONTINUOUS_DIMS] = np.clip(continuous, space.low, space.high)
    return actions.astype(np.float32)
