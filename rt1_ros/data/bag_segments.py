"""Where the episodes of a recorded bag begin and end: one instruction for the whole bag, or a sidecar YAML beside
it (<bag>.segments.yaml) with each episode's start, end, instruction and success; and the error an ordinary-topics
import refuses a bag, a sidecar or a mapping with."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rt1_ros.configuration.yaml_config import load_yaml, short_repr

SEGMENT_KEYS = {"start", "end", "instruction", "success", "task_family", "seed"}
SIDECAR_SUFFIX = ".segments.yaml"


class BagImportError(ValueError):
    """A bag, a sidecar or a mapping that cannot be imported (named in the message)."""


@dataclass(frozen=True)
class Segment:
    """One episode of a bag: the images in [start, end] (seconds on the mapping's clock; None: the bag's first or
    last image)."""

    instruction: str
    success: bool = True
    start_s: float | None = None
    end_s: float | None = None
    task_family: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Segmentation:
    segments: tuple[Segment, ...]
    absolute: bool = False  # False: start/end count from the bag's first image


def whole_bag(instruction: str, success: bool = True) -> Segmentation:
    if not instruction.strip():
        raise BagImportError("the instruction is empty")
    return Segmentation((Segment(instruction=instruction, success=success),))


def sidecar_path(bag: Path) -> Path:
    """Where a bag's segmentation sidecar is looked for: beside the bag directory, <bag>.segments.yaml."""
    bag = Path(bag)
    return bag.parent / (bag.name + SIDECAR_SUFFIX)


def parse_segments(data, where: str) -> Segmentation:
    """A sidecar's content:

        time_base: first_image     # first_image: seconds after the bag's first camera image; absolute: seconds on
        episodes:                  # the mapping's clock (header stamps or bag receive times)
          - {start: 0.0, end: 12.5, instruction: "pick up the red cube", success: true}
          - {start: 14.0, end: 30.0, instruction: "push the blue cube left", success: false, task_family: push}
    """
    if not isinstance(data, dict) or set(data) - {"time_base", "episodes"}:
        raise BagImportError(f"{where}: expected keys time_base and episodes, found {short_repr(data)}")
    time_base = data.get("time_base", "first_image")
    if time_base not in ("first_image", "absolute"):
        raise BagImportError(f"{where}: time_base is first_image or absolute, found {short_repr(time_base)}")
    episodes = data.get("episodes")
    if not isinstance(episodes, list) or not episodes:
        raise BagImportError(f"{where}: episodes: a list of {{start, end, instruction, success}}")
    segments = []
    for index, entry in enumerate(episodes):
        here = f"{where}: episodes[{index}]"
        if not isinstance(entry, dict):
            raise BagImportError(f"{here}: expected a mapping, found {short_repr(entry)}")
        unknown = sorted(set(entry) - SEGMENT_KEYS)
        missing = sorted({"start", "end", "instruction"} - set(entry))
        if unknown or missing:
            raise BagImportError(f"{here}: " + "; ".join(([f"unknown key(s) {unknown}"] if unknown else [])
                                                          + ([f"missing {missing}"] if missing else [])))
        start, end = entry["start"], entry["end"]
        for key, value in (("start", start), ("end", end)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise BagImportError(f"{here}: {key} must be a number of seconds, found {short_repr(value)}")
        if end <= start:
            raise BagImportError(f"{here}: end {end} is not after start {start}")
        instruction = entry["instruction"]
        if not isinstance(instruction, str) or not instruction.strip():
            raise BagImportError(f"{here}: instruction must be a non-empty string")
        success = entry.get("success", True)
        if not isinstance(success, bool):
            raise BagImportError(f"{here}: success is true or false, found {short_repr(success)}")
        family = entry.get("task_family")
        if family is not None and not (isinstance(family, str) and family.strip()):
            raise BagImportError(f"{here}: task_family must be a non-empty string")
        seed = entry.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise BagImportError(f"{here}: seed must be a non-negative integer")
        segments.append(Segment(instruction=instruction, success=success, start_s=float(start), end_s=float(end),
                                task_family=family, seed=seed))
    ordered = sorted(segments, key=lambda s: s.start_s)
    for before, after in zip(ordered, ordered[1:]):
        if after.start_s < before.end_s:
            raise BagImportError(f"{where}: episodes {before.instruction!r} and {after.instruction!r} overlap")
    return Segmentation(tuple(segments), absolute=time_base == "absolute")


def load_segments(path: str | Path) -> Segmentation:
    try:
        data = load_yaml(path)
    except (OSError, ValueError) as exc:
        raise BagImportError(f"{path}: {exc}") from exc
    return parse_segments(data, str(path))
