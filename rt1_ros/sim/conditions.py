"""Typed configuration of the evaluation protocol (config/sim.yaml ``appearances``, ``cameras``, ``conditions``,
``seeds``): how a scene may look, where the head camera may sit, the named conditions built from them, and the three
disjoint seed ranges. Plain data; `rt1_ros.sim.variation` draws looks from it and `MobileManipulatorSim.reset` applies
them."""
from __future__ import annotations

from dataclasses import dataclass

Vec2 = tuple[float, float]


def _check_range(name: str, bounds: Vec2) -> None:
    if not bounds[0] <= bounds[1]:
        raise ValueError(f"{name}: need low <= high, got {bounds}")


SURFACE_TEXTURES = ("plain", "checker", "speckle", "grid", "gradient")  # the table's and the floor's materials


@dataclass(frozen=True)
class ColourBox:
    """Colours drawn uniformly in HSV: hue from one of the intervals (degrees, 0-360), saturation and value."""

    hue_deg: tuple[Vec2, ...]
    saturation: Vec2
    value: Vec2

    def __post_init__(self) -> None:
        if not self.hue_deg:
            raise ValueError("a colour box needs at least one hue interval")
        for interval in self.hue_deg:
            _check_range("hue_deg", interval)
        _check_range("saturation", self.saturation)
        _check_range("value", self.value)


@dataclass(frozen=True)
class SurfaceVariation:
    textures: tuple[str, ...]  # drawn uniformly from SURFACE_TEXTURES
    colour: ColourBox  # the texture's tint

    def __post_init__(self) -> None:
        unknown = sorted(set(self.textures) - set(SURFACE_TEXTURES))
        if not self.textures or unknown:
            raise ValueError(f"textures must be a non-empty subset of {SURFACE_TEXTURES}, got {self.textures}")


@dataclass(frozen=True)
class AppearanceConfig:
    """How a scene may look: drawn per episode from its seed. Intervals of length 0 pin a value."""

    name: str
    table: SurfaceVariation
    floor: SurfaceVariation
    light_intensity: tuple[Vec2, ...]  # intervals of the factor on the sun's and the headlight's nominal strength
    light_tilt_deg: Vec2  # the sun's direction tilted this far from its nominal one, towards a random azimuth
    object_shade: float  # each channel of each object's colour moves by up to this much (0-1 scale)

    def __post_init__(self) -> None:
        if not self.light_intensity:
            raise ValueError("light_intensity needs at least one interval")
        for interval in (*self.light_intensity, self.light_tilt_deg):
            _check_range("appearance interval", interval)


@dataclass(frozen=True)
class CameraVariation:
    """How far the head camera sits from its nominal mounting, drawn per episode: each offset's magnitude uniform in
    its interval, its sign random. [0, 0] everywhere is the nominal camera."""

    name: str
    position_m: Vec2  # x, y and z offsets in the base frame
    angle_deg: Vec2  # pitch, yaw and roll offsets
    fovy_deg: Vec2  # field-of-view offset (another lens or calibration)

    def __post_init__(self) -> None:
        for interval in (self.position_m, self.angle_deg, self.fovy_deg):
            _check_range(f"camera variation {self.name}", interval)
            if interval[0] < 0:
                raise ValueError(f"camera variation {self.name}: magnitudes are >= 0")


CONDITION_INSTRUCTIONS = ("training", "unseen")
CONDITION_TARGETS = ("seen", "held_out")


@dataclass(frozen=True)
class ConditionConfig:
    """A named evaluation condition: one declared variant of the scenes and instructions (rt1-eval --condition,
    rt1-generate --condition, sim_node's `condition`)."""

    name: str
    description: str
    instructions: str  # "training": the families' templates; "unseen": their unseen_templates
    targets: str  # "seen": never a held-out pair; "held_out": only tasks.held_out_pairs
    object_count: tuple[int, int]  # objects on the table, uniform in this range (distinct colour-shape pairs)
    appearance: str  # an AppearanceConfig name
    camera: str  # a CameraVariation name

    def __post_init__(self) -> None:
        if self.instructions not in CONDITION_INSTRUCTIONS:
            raise ValueError(f"condition {self.name}: instructions must be one of {CONDITION_INSTRUCTIONS}")
        if self.targets not in CONDITION_TARGETS:
            raise ValueError(f"condition {self.name}: targets must be one of {CONDITION_TARGETS}")
        if not 1 <= self.object_count[0] <= self.object_count[1]:
            raise ValueError(f"condition {self.name}: need 1 <= object_count[0] <= object_count[1]")


SEED_SPLITS = ("train", "dev", "report")


@dataclass(frozen=True)
class SeedRange:
    first: int
    last: int  # inclusive

    def __contains__(self, seed: int) -> bool:
        return self.first <= seed <= self.last


@dataclass(frozen=True)
class SeedRangesConfig:
    """The evaluation protocol's three disjoint seed ranges: `train` for rt1-generate's demonstrations, `dev` for
    every choice of lever, checkpoint or setting, `report` for the one evaluation of a model that is published."""

    train: SeedRange
    dev: SeedRange
    report: SeedRange

    def __post_init__(self) -> None:
        ranges = sorted((self.train, self.dev, self.report), key=lambda r: r.first)
        for r in ranges:
            if r.first > r.last or r.first < 0:
                raise ValueError(f"seed range {r} is empty or negative")
        for lower, upper in zip(ranges, ranges[1:]):
            if lower.last >= upper.first:
                raise ValueError("seed ranges train, dev and report must not overlap")

    def split(self, name: str) -> SeedRange:
        if name not in SEED_SPLITS:
            raise KeyError(f"unknown seed split {name!r}; known: {SEED_SPLITS}")
        return getattr(self, name)

    def split_of(self, seed: int) -> str | None:
        return next((name for name in SEED_SPLITS if seed in self.split(name)), None)
