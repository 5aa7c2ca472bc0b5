"""A tf2-like transform tree built from a bag's /tf and /tf_static, numpy only (no tf2 packages needed).

Each child frame has one parent. A static edge (tf_static) holds one transform for all times; a dynamic edge
(tf, or a pose topic) is a time series, interpolated between its samples (linear translation, spherical rotation)
as tf2 does. Unlike tf2, a lookup just outside an edge's samples holds the nearest one when it lies within
``max_gap_ns`` (a bag seldom starts or ends exactly on a sample); further out, or across a gap between two samples
longer than that, the lookup is refused, naming the edge. Frames are named in every refusal, so a mapping that
names a frame the bag lacks says which frame and which frames the bag has.

Conventions: a transform (R, p) of child in parent maps child coordinates to parent coordinates,
x_parent = R @ x_child + p, as geometry_msgs/TransformStamped does (header.frame_id = parent, child_frame_id = child).
Quaternions are (x, y, z, w), ROS order.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np


class TransformError(ValueError):
    pass


def quaternion_to_matrix(quaternion) -> np.ndarray:
    """(x, y, z, w) -> (3, 3) rotation; normalised first (bags hold rounded quaternions)."""
    x, y, z, w = np.asarray(quaternion, dtype=float) / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (x, y, z, w) with w >= 0."""
    m = np.asarray(rotation, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (x, y, z, w), the short way round."""
    q0 = q0 / np.linalg.norm(q0)
    q1 = q1 / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: linear is exact to rounding and avoids dividing by sin(0)
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    angle = math.acos(dot)
    return (math.sin((1 - fraction) * angle) * q0 + math.sin(fraction * angle) * q1) / math.sin(angle)


def roll_pitch_yaw_delta(rotation_before: np.ndarray, rotation_after: np.ndarray) -> np.ndarray:
    """(roll, pitch, yaw) of the rotation D = after @ before.T, decomposed as D = Rz(yaw) Ry(pitch) Rx(roll): the
    rotation deltas RT-1's arm action carries (about the fixed axes of the frame both rotations are expressed in),
    the exact inverse of how the simulator and the node apply them."""
    d = np.asarray(rotation_after) @ np.asarray(rotation_before).T
    pitch = -math.asin(max(-1.0, min(1.0, d[2, 0])))
    return np.array([math.atan2(d[2, 1], d[2, 2]), pitch, math.atan2(d[1, 0], d[0, 0])])


def planar_twist(pose_before: tuple[float, float, float], pose_after: tuple[float, float, float],
                 seconds: float) -> np.ndarray:
    """(vx, vy, yaw rate) in the body frame that carries planar pose (x, y, yaw) ``pose_before`` to ``pose_after``
    in ``seconds`` when held constant (the SE(2) logarithm of the relative pose): what a base command held for that
    time did."""
    x0, y0, yaw0 = pose_before
    x1, y1, yaw1 = pose_after
    c, s = math.cos(yaw0), math.sin(yaw0)
    dx, dy = x1 - x0, y1 - y0
    local = np.array([c * dx + s * dy, -s * dx + c * dy])
    theta = (yaw1 - yaw0 + math.pi) % (2 * math.pi) - math.pi
    if abs(theta) < 1e-9:
        v = local
    else:
        # A constant body twist moves the body along a circular arc: local = V @ v with
        # V = [[sin t, -(1 - cos t)], [1 - cos t, sin t]] / t.
        a, b = math.sin(theta) / theta, (1 - math.cos(theta)) / theta
        v = np.array([a * local[0] + b * local[1], -b * local[0] + a * local[1]]) / (a * a + b * b)
    return np.array([v[0], v[1], theta]) / seconds


def planar_pose(rotation: np.ndarray, translation: np.ndarray) -> tuple[float, float, float]:
    """(x, y, yaw) of a transform, the yaw of its x axis projected onto the parent's xy plane."""
    return float(translation[0]), float(translation[1]), math.atan2(rotation[1, 0], rotation[0, 0])


@dataclass
class Edge:
    """The transform of ``child`` in ``parent``: one static value, or samples in time order."""

    parent: str
    child: str
    source: str  # where it came from (a topic), for messages
    static: bool
    times: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)  # quaternions (x, y, z, w)

    def sort(self) -> None:
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        self.times = [self.times[i] for i in order]
        self.translations = [self.translations[i] for i in order]
        self.rotations = [self.rotations[i] for i in order]

    def at(self, time_ns: int, max_gap_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(R (3, 3), p (3,)) of child in parent at ``time_ns``."""
        if self.static:
            return quaternion_to_matrix(self.rotations[-1]), self.translations[-1]
        index = bisect_right(self.times, time_ns)
        if index == 0 or index == len(self.times):
            nearest = 0 if index == 0 else len(self.times) - 1
            if abs(self.times[nearest] - time_ns) > max_gap_ns:
                raise TransformError(
                    f"{self.parent} -> {self.child} ({self.source}) has no sample within {max_gap_ns / 1e9:g} s of "
                    f"t={time_ns / 1e9:.3f} s (samples from {self.times[0] / 1e9:.3f} to {self.times[-1] / 1e9:.3f} s)")
            return quaternion_to_matrix(self.rotations[nearest]), self.translations[nearest]
        before, after = index - 1, index
        span = self.times[after] - self.times[before]
        if span > max_gap_ns:
            raise TransformError(f"{self.parent} -> {self.child} ({self.source}) has a gap of {span / 1e9:.3f} s "
                                 f"around t={time_ns / 1e9:.3f} s (at most {max_gap_ns / 1e9:g} s is interpolated)")
        fraction = (time_ns - self.times[before]) / span if span else 0.0
        translation = self.translations[before] + fraction * (self.translations[after] - self.translations[before])
        rotation = slerp(self.rotations[before], self.rotations[after], fraction)
        return quaternion_to_matrix(rotation), translation


class TransformTree:
    """Frames and the edges between them; `lookup` chains static and dynamic edges through the common ancestor."""

    def __init__(self, max_gap_ns: int) -> None:
        self.max_gap_ns = max_gap_ns
        self.edges: dict[str, Edge] = {}  # by child frame

    def add(self, parent: str, child: str, time_ns: int, translation, rotation, static: bool, source: str) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")  # tf2 ignores a leading slash
        edge = self.edges.get(child)
        if edge is None:
            edge = self.edges[child] = Edge(parent, child, source, static)
        elif edge.parent != parent:
            raise TransformError(f"frame {child!r} has two parents: {edge.parent!r} ({edge.source}) and {parent!r} "
                                 f"({source}); a transform tree gives each frame one")
        elif edge.static != static:
            static_source = edge.source if edge.static else source
            raise TransformError(f"{parent} -> {child} comes both as a static ({static_source}) and a dynamic "
                                 f"transform; pick one")
        if static:  # the newest static transform replaces the older (tf2's latched behaviour)
            edge.times, edge.translations, edge.rotations = [time_ns], [np.asarray(translation, float)], \
                [np.asarray(rotation, float)]
        else:
            edge.times.append(time_ns)
            edge.translations.append(np.asarray(translation, dtype=float))
            edge.rotations.append(np.asarray(rotation, dtype=float))

    def finish(self) -> None:
        for edge in self.edges.values():
            edge.sort()

    @property
    def frames(self) -> list[str]:
        return sorted({e.child for e in self.edges.values()} | {e.parent for e in self.edges.values()})

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self.edges:
            path.append(self.edges[path[-1]].parent)
            if len(path) > len(self.edges) + 1:
                raise TransformError(f"the transforms above {frame!r} form a loop: {' -> '.join(path)}")
        return path

    def check(self, target: str, source: str) -> list[Edge]:
        """The edges that connect ``source`` to ``target`` (TransformError naming a missing or unconnected frame)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        known = set(self.frames)
        for frame in (target, source):
            if frame not in known:
                raise TransformError(f"frame {frame!r} is not in the bag's transforms (frames: {sorted(known)})")
        up_source, up_target = self._path_to_root(source), self._path_to_root(target)
        common = next((frame for frame in up_source if frame in up_target), None)
        if common is None:
            raise TransformError(f"frames {source!r} and {target!r} are not connected (roots {up_source[-1]!r} and "
                                 f"{up_target[-1]!r})")
        return [self.edges[f] for f in up_source[:up_source.index(common)]] + \
            [self.edges[f] for f in up_target[:up_target.index(common)]]

    def lookup(self, target: str, source: str, time_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(R, p): the pose of frame ``source`` in frame ``target`` at ``time_ns`` (x_target = R x_source + p)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        up_source, up_target = self._path_to_root(source), self._path_to_root(target)
        common = next((frame for frame in up_source if frame in up_target), None)
        if common is None:
            self.check(target, source)  # raises, naming what is missing

        def to_common(path: list[str]) -> tuple[np.ndarray, np.ndarray]:
            rotation, translation = np.eye(3), np.zeros(3)
            for frame in path[:path.index(common)]:
                edge_rotation, edge_translation = self.edges[frame].at(time_ns, self.max_gap_ns)
                rotation, translation = edge_rotation @ rotation, edge_rotation @ translation + edge_translation
            return rotation, translation

        source_rotation, source_translation = to_common(up_source)
        target_rotation, target_translation = to_common(up_target)
        rotation = target_rotation.T @ source_rotation
        return rotation, target_rotation.T @ (source_translation - target_translation)
