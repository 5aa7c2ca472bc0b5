"""Typed configuration: YAML mappings onto (nested) dataclasses, strictly.

Unknown keys are an error rather than silently ignored, so a typo in a YAML file cannot leave a default in
force without anyone noticing. YAML anchors and aliases are refused (a checkpoint's config.yaml comes from wherever
the checkpoint came from, and nine levels of nine-fold aliases expand a 1 kB file to hundreds of millions of
nodes), and error messages show a bounded excerpt of a value, never its full repr.
"""
from __future__ import annotations

import dataclasses
import reprlib
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # rt1_ros/ (this module is in rt1_ros/configuration/)
# Source checkout: config/ beside the package. Installed (colcon/ament): share/rt1_ros/config.
_CONFIG_CANDIDATES = (PACKAGE_ROOT.parent / "config",)


class ConfigError(ValueError):
    """A configuration file or mapping does not fit its dataclass."""


class _NoAliasSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors and aliases while composing, before any alias could be expanded."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are not accepted in configuration files",
                event.start_mark)
        return super().compose_node(parent, index)


def safe_load(text: str):
    """yaml.safe_load without anchors or aliases; yaml.YAMLError for either."""
    loader = _NoAliasSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def short_repr(value: Any) -> str:
    """A repr bounded in length and in the work it does, for error messages about untrusted values."""
    return reprlib.repr(value)


def config_dir() -> Path:
    """The directory holding the package's YAML files (source tree or ament share directory)."""
    for candidate in _CONFIG_CANDIDATES:
        if candidate.is_dir():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("rt1_ros")) / "config"
    except Exception as exc:  # ament_index raises its own lookup errors
        raise ConfigError("cannot find rt1_ros's config/ directory") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at top level, found {type(data).__name__}")
    return data


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses, tuples and lists are converted recursively."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {name: _convert(hints[name], value, f"{where or cls.__name__}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def to_mapping(obj: Any) -> Any:
    """The inverse of :func:`from_mapping`: plain dicts/lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    return obj


def add_override_argument(parser, help: str) -> None:
    """The one ``--set KEY=VALUE ...`` flag of rt1-train, rt1-eval, rt1-bench and the demo (read with
    `apply_overrides`). Repeated flags accumulate: ``--set a=1 --set b=2`` sets both (a plain nargs flag would keep
    only the last and drop the others without a word)."""
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help)


def apply_overrides(config: T, assignments: list[str], where: str = "") -> T:
    """``key=value`` strings over the dataclass ``config``: the one override syntax of rt1-train, rt1-eval,
    rt1-bench and the demo (``--set``). Values are parsed as YAML; a dotted key reaches into a nested config
    (``latency.steps=5``); the result is type-checked like the YAML files, naming unknown keys."""
    mapping = to_mapping(config)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{assignment}' is not key=value")
        *parents, leaf = key.strip().split(".")
        target = mapping
        for parent in parents:
            if not isinstance(target.get(parent), dict):
                raise ConfigError(f"override '{assignment}': {parent!r} is not a nested config of "
                                  f"{where or type(config).__name__}")
            target = target[parent]
        target[leaf] = safe_load(value)
    return from_mapping(type(config), mapping, where=where or type(config).__name__)


def load_dataclass(cls: type[T], path: str | Path, section: str | None = None) -> T:
    """Load ``cls`` from a YAML file, optionally from one top-level ``section`` of it."""
    data = load_yaml(path)
    if section is not None:
        if section not in data:
            raise ConfigError(f"{path}: no section '{section}' (has {sorted(data)})")
        data = data[section]
    return from_mapping(cls, data, where=f"{Path(path).name}{':' + section if section else ''}")


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    if origin is typing.Union or str(origin) == "types.UnionType":
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, where) if len(non_none) == 1 else value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {type(value).__name__}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, found {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, found {type(value).__name__} "
                          f"{short_repr(value)}")
    return value
