"""Scene variation: how an episode's scene looks and where its head camera sits, drawn from the episode's seed.

A condition (config/sim.yaml ``conditions``) names an appearance and a camera variation; `sample_look` draws one
`SceneLook` from them. The look is plain numbers (no MuJoCo here), so a draw is testable and the simulator applies
it to its compiled model at a reset (`MobileManipulatorSim.reset`): material tints and texture choice, light
strength and direction, object colour shades, and the camera's pose and field of view.

Colours are drawn in HSV so that ranges read as what they mean ("no teal tables", "pale to mid saturation").
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from rt1_ros.sim.conditions import AppearanceConfig, CameraVariation, ColourBox, SurfaceVariation
from rt1_ros.sim.config import SimConfig


@dataclass(frozen=True)
class SurfaceLook:
    texture: str  # one of config.SURFACE_TEXTURES
    rgb: tuple[float, float, float]  # the texture's tint


@dataclass(frozen=True)
class SceneLook:
    table: SurfaceLook
    floor: SurfaceLook
    light_intensity: float  # factor on the sun's and the headlight's nominal strength
    light_tilt: tuple[float, float]  # the sun's tilt from its nominal direction (rad) and the azimuth it tilts to
    object_shade: tuple[tuple[float, float, float], ...]  # per object spec (scene.object_specs order): rgb offsets
    camera_offset_m: tuple[float, float, float]  # base frame x, y, z
    camera_angles_deg: tuple[float, float, float]  # pitch (down positive), yaw (left positive), roll
    camera_fovy_offset_deg: float


def _uniform_in(rng: np.random.Generator, intervals) -> float:
    """One value uniform over the union of ``intervals`` (each chosen in proportion to its length)."""
    lengths = np.array([high - low for low, high in intervals], dtype=float)
    if lengths.sum() <= 0:
        low, _ = intervals[int(rng.integers(len(intervals)))]
        return float(low)
    index = int(rng.choice(len(intervals), p=lengths / lengths.sum()))
    low, high = intervals[index]
    return float(rng.uniform(low, high))


def sample_colour(box: ColourBox, rng: np.random.Generator) -> tuple[float, float, float]:
    hue = _uniform_in(rng, box.hue_deg) % 360.0
    saturation = float(rng.uniform(*box.saturation))
    value = float(rng.uniform(*box.value))
    return colorsys.hsv_to_rgb(hue / 360.0, saturation, value)


def _surface(variation: SurfaceVariation, rng: np.random.Generator) -> SurfaceLook:
    texture = variation.textures[int(rng.integers(len(variation.textures)))]
    return SurfaceLook(texture, sample_colour(variation.colour, rng))


def _signed_magnitude(rng: np.random.Generator, interval: tuple[float, float]) -> float:
    return float(rng.uniform(*interval)) * (1.0 if rng.random() < 0.5 else -1.0)


def sample_look(config: SimConfig, appearance: AppearanceConfig, camera: CameraVariation, num_objects: int,
                rng: np.random.Generator) -> SceneLook:
    """One scene look; the same ``rng`` state gives the same look."""
    table = _surface(appearance.table, rng)
    floor = _surface(appearance.floor, rng)
    intensity = _uniform_in(rng, appearance.light_intensity)
    tilt = math.radians(float(rng.uniform(*appearance.light_tilt_deg)))
    azimuth = float(rng.uniform(-math.pi, math.pi))
    shade = rng.uniform(-appearance.object_shade, appearance.object_shade, size=(num_objects, 3))
    offset = tuple(_signed_magnitude(rng, camera.position_m) for _ in range(3))
    angles = tuple(_signed_magnitude(rng, camera.angle_deg) for _ in range(3))
    fovy = _signed_magnitude(rng, camera.fovy_deg)
    return SceneLook(table=table, floor=floor, light_intensity=intensity, light_tilt=(tilt, azimuth),
                     object_shade=tuple(tuple(float(v) for v in row) for row in shade),
                     camera_offset_m=offset, camera_angles_deg=angles, camera_fovy_offset_deg=fovy)


def tilted_direction(nominal: np.ndarray, tilt: float, azimuth: float) -> np.ndarray:
    """``nominal`` (3,) direction turned by ``tilt`` radians towards the horizontal direction ``azimuth``."""
    nominal = np.asarray(nominal, dtype=float) / np.linalg.norm(nominal)
    towards = np.array([math.cos(azimuth), math.sin(azimuth), 0.0])
    towards = towards - nominal * float(towards @ nominal)  # the part perpendicular to the nominal direction
    norm = float(np.linalg.norm(towards))
    if norm < 1e-9 or tilt == 0.0:
        return nominal
    return math.cos(tilt) * nominal + math.sin(tilt) * towards / norm


def camera_axes(pitch_deg: float, yaw_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """(3, 3) columns: the camera's x (image right), y (image up) and z (backwards) axes in the base frame, for a
    camera looking along base +x tilted down by ``pitch_deg``, then turned left by ``yaw_deg`` about base z and
    rolled by ``roll_deg`` about its own optical axis (MuJoCo cameras look along their -z)."""
    pitch, yaw, roll = (math.radians(v) for v in (pitch_deg, yaw_deg, roll_deg))
    x_axis = np.array([0.0, -1.0, 0.0])
    y_axis = np.array([math.sin(pitch), 0.0, math.cos(pitch)])
    z_axis = np.cross(x_axis, y_axis)
    axes = np.stack([x_axis, y_axis, z_axis], axis=1)
    c, s = math.cos(roll), math.sin(roll)
    roll_about_z = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    c, s = math.cos(yaw), math.sin(yaw)
    yaw_about_base_z = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return yaw_about_base_z @ axes @ roll_about_z
