"""The mapping YAML of rt1-import-lerobot: which LeRobotDataset features become RT-1's camera, instruction and each
of its 11 action dimensions. Every dimension is declared, by name (rt1_ros.configuration.action_layout.DIMENSION_NAMES): a
dataset without a mobile base declares ``base_x: {constant: 0.0}`` rather than having it silently zeroed, and a
mapping that leaves a dimension out is refused, naming it.

    camera: observation.images.front           # a video or image feature
    instruction: task                          # the frame's task (default), or {text: "pick up the cube"}
    task_family: lerobot                       # rt1_ros episode metadata (default: rt1/task_family, else lerobot)
    dimensions:
      arm_x: {feature: action, name: ee_dx}    # an element by its name in info.json ...
      arm_y: {feature: action, index: 1}       # ... or by index; value * scale + offset
      arm_z: {feature: observation.state, name: z, delta: true}   # next minus current: absolute -> per-step delta
      gripper: {feature: action, index: 6, scale: -1.0, offset: 1.0}
      base_x: {constant: 0.0}
      mode: {constant: arm}                    # arm | base | terminate, or an element holding the class index
    terminate_last_step: false                 # true: the last step becomes mode terminate with zero motion

``delta`` turns absolute poses into RT-1's per-step deltas (the last step of an episode gets 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, BASE_DIMS, DIMENSION_NAMES, MODE_CLASSES, MODE_DIM,
                                                 NUM_ACTION_DIMS, Mode)
from rt1_ros.data.lerobot_format import CAMERA_DTYPES, feature_names, feature_width
from rt1_ros.configuration.yaml_config import load_yaml, short_repr

TOP_LEVEL_KEYS = {"camera", "instruction", "task_family", "dimensions", "terminate_last_step"}
SOURCE_KEYS = {"feature", "index", "name", "constant", "scale", "offset", "delta"}


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class DimensionSource:
    """Where one RT-1 dimension comes from: a constant, or element ``index`` of ``feature`` (times scale, plus
    offset; optionally its per-step difference)."""

    constant: float | None = None
    feature: str | None = None
    index: int = 0
    scale: float = 1.0
    offset: float = 0.0
    delta: bool = False

    def values(self, columns: dict[str, np.ndarray], length: int) -> np.ndarray:
        if self.constant is not None:
            return np.full(length, self.constant, dtype=np.float64)
        column = np.asarray(columns[self.feature], dtype=np.float64)
        values = column if column.ndim == 1 else column[:, self.index]
        if self.delta:
            values = np.append(np.diff(values), 0.0)
        return values * self.scale + self.offset


@dataclass(frozen=True)
class LeRobotMapping:
    camera: str
    dimensions: tuple[DimensionSource, ...]  # in RT-1's order, NUM_ACTION_DIMS of them
    instruction_text: str | None = None  # None: each episode's task
    task_family: str | None = None
    terminate_last_step: bool = False

    @property
    def features(self) -> set[str]:
        """The dataset columns the actions are computed from."""
        return {source.feature for source in self.dimensions if source.feature is not None}

    def actions(self, columns: dict[str, np.ndarray], length: int) -> np.ndarray:
        """(length, 11) float32 actions of one episode from its feature columns."""
        actions = np.stack([source.values(columns, length) for source in self.dimensions], axis=1)
        if self.terminate_last_step:
            actions[-1, ARM_DELTA_DIMS] = 0.0
            actions[-1, BASE_DIMS] = 0.0
            actions[-1, MODE_DIM] = Mode.TERMINATE
        return actions.astype(np.float32)


def _element_index(source: dict, feature_key: str, feature: dict, where: str) -> int:
    width = feature_width(feature) or (1 if feature.get("shape") in ([1], (1,)) else 0)
    if width == 0:
        raise MappingError(f"{where}: feature {feature_key!r} has shape {feature.get('shape')}; only 1-d numeric "
                           "features can be mapped")
    if "name" in source:
        names = feature_names(feature) or []
        if source["name"] not in names:
            raise MappingError(f"{where}: {feature_key!r} has no element named {source['name']!r} "
                               f"(names: {names or 'none in info.json; use index'})")
        return names.index(source["name"])
    index = source.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < width:
        raise MappingError(f"{where}: index {short_repr(index)} outside {feature_key!r} (width {width})")
    return index


def _dimension_source(dimension: str, source, features: dict) -> DimensionSource:
    where = f"dimensions.{dimension}"
    if not isinstance(source, dict):
        raise MappingError(f"{where}: expected a mapping like {{feature: action, index: 0}} or {{constant: 0.0}}, "
                           f"found {short_repr(source)}")
    unknown = sorted(set(source) - SOURCE_KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {unknown}; known: {sorted(SOURCE_KEYS)}")
    if ("constant" in source) == ("feature" in source):
        raise MappingError(f"{where}: give exactly one of 'constant' or 'feature'")
    if "constant" in source:
        constant = source["constant"]
        if dimension == "mode" and isinstance(constant, str):
            if constant not in MODE_CLASSES:
                raise MappingError(f"{where}: mode {constant!r} is not one of {list(MODE_CLASSES)}")
            constant = MODE_CLASSES.index(constant)
        if not isinstance(constant, (int, float)) or isinstance(constant, bool) or not np.isfinite(constant):
            raise MappingError(f"{where}: constant must be a finite number, found {short_repr(constant)}")
        return DimensionSource(constant=float(constant))
    feature_key = source["feature"]
    if feature_key not in features:
        raise MappingError(f"{where}: the dataset has no feature {short_repr(feature_key)} "
                           f"(features: {sorted(features)})")
    if features[feature_key].get("dtype") in CAMERA_DTYPES + ("string",):
        raise MappingError(f"{where}: {feature_key!r} is a {features[feature_key]['dtype']} feature, not numbers")
    numbers = {key: source.get(key, default) for key, default in (("scale", 1.0), ("offset", 0.0))}
    for key, value in numbers.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise MappingError(f"{where}: {key} must be a finite number, found {short_repr(value)}")
    return DimensionSource(feature=feature_key, index=_element_index(source, feature_key, features[feature_key], where),
                           scale=float(numbers["scale"]), offset=float(numbers["offset"]),
                           delta=bool(source.get("delta", False)))


def parse_mapping(data: dict, features: dict) -> LeRobotMapping:
    """The mapping ``data`` (parsed YAML) checked against a dataset's info.json ``features``."""
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise MappingError(f"unknown key(s) {unknown}; known: {sorted(TOP_LEVEL_KEYS)}")
    camera = data.get("camera")
    if camera not in features or features[camera].get("dtype") not in CAMERA_DTYPES:
        cameras = sorted(key for key, feature in features.items() if feature.get("dtype") in CAMERA_DTYPES)
        raise MappingError(f"camera: {short_repr(camera)} is not a video or image feature of the dataset "
                           f"(cameras: {cameras})")
    instruction = data.get("instruction", "task")
    if instruction == "task":
        instruction_text = None
    elif isinstance(instruction, dict) and set(instruction) == {"text"} and isinstance(instruction["text"], str) \
            and instruction["text"].strip():
        instruction_text = instruction["text"]
    else:
        raise MappingError(f"instruction: 'task' or {{text: ...}}, found {short_repr(instruction)}")
    dimensions = data.get("dimensions")
    if not isinstance(dimensions, dict):
        raise MappingError("dimensions: a mapping from RT-1 dimension names to their sources is required")
    unknown_dimensions = sorted(set(dimensions) - set(DIMENSION_NAMES))
    if unknown_dimensions:
        raise MappingError(f"dimensions: {unknown_dimensions} are not RT-1 dimensions ({list(DIMENSION_NAMES)})")
    missing = [name for name in DIMENSION_NAMES if name not in dimensions]
    if missing:
        raise MappingError(f"dimensions: {', '.join(missing)} not mapped; map each to a feature element or declare "
                           "it constant (e.g. base_x: {constant: 0.0}, mode: {constant: arm})")
    sources = tuple(_dimension_source(name, dimensions[name], features) for name in DIMENSION_NAMES)
    assert len(sources) == NUM_ACTION_DIMS
    task_family = data.get("task_family")
    if task_family is not None and not (isinstance(task_family, str) and task_family.strip()):
        raise MappingError(f"task_family: a non-empty string, found {short_repr(task_family)}")
    terminate = data.get("terminate_last_step", False)
    if not isinstance(terminate, bool):
        raise MappingError(f"terminate_last_step: true or false, found {short_repr(terminate)}")
    return LeRobotMapping(camera=camera, dimensions=sources, instruction_text=instruction_text,
                          task_family=task_family, terminate_last_step=terminate)


def load_mapping(path: str | Path, features: dict) -> LeRobotMapping:
    try:
        return parse_mapping(load_yaml(path), features)
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from exc
