"""ROS parameters described once, on the runtime configs' own dataclass fields.

A field made with `parameter(default, description, range=…, choices=…, read_only=…)` is a ROS parameter of the same
name (or ``name=``): its default, description, range or choices and read-only flag live there and nowhere else.
Everything else derives from the config class:

- `parameter_fields` walks a config, descending into nested dataclass fields (`rt1_node`'s `NodeConfig` holds a
  `PolicySource` and a `ControllerConfig`), and lists the flat ROS parameters in declaration order;
- `rt1_ros.node.parameter_declaration.declare_parameters` declares them on a node, and `from_parameters` builds the
  typed config back from flat ROS values;
- `markdown_table` writes docs/parameters.md's tables (``python -m rt1_ros.node.parameter_table``), and
  test/test_docs.py checks those tables, test/configuration/test_parameters.py config/rt1.yaml, against the fields.

Plain data, free of ROS and torch, so every node and runtime module can use it (sim_node must not pull in torch).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Mapping

SPEC = "rt1_ros.parameter"  # dataclass field metadata key: the field's ParameterSpec
NAME = "rt1_ros.parameter_name"  # metadata key: the ROS name, when it differs from the field's


@dataclass(frozen=True)
class ParameterSpec:
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False  # needs a restart: model, device, topics' types and QoS

    def check(self, name: str, value: Any) -> None:
        """ValueError unless ``value`` is one of the choices and inside the range (rclpy checks ranges on updates
        itself, but not a value given at start-up, nor string choices)."""
        if self.choices and value not in self.choices:
            raise ValueError(f"{name} must be one of {self.choices}, got {value!r}")
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise ValueError(f"{name}={value} is outside [{self.range[0]}, {self.range[1]}]")


def parameter(default: Any = MISSING, description: str = "", *, range: tuple[float, float] | None = None,
              choices: tuple[str, ...] = (), read_only: bool = False, name: str | None = None) -> Any:
    """A dataclass field that is a ROS parameter. No ``default``: the value comes from a config file (sim_node)."""
    if not description:
        raise ValueError("a parameter needs a description (it is the ROS descriptor's and docs/parameters.md's)")
    metadata: dict[str, Any] = {SPEC: ParameterSpec(description, range, tuple(choices), read_only)}
    if name is not None:
        metadata[NAME] = name
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ParameterField:
    name: str  # the ROS parameter's name
    path: tuple[str, ...]  # attribute path from the root config to the field
    spec: ParameterSpec
    default: Any  # MISSING when the field has none
    type: Any  # the field's type (int, float, str or bool)


def parameter_fields(config_type: type) -> list[ParameterField]:
    """The ROS parameters of ``config_type``, in field order, nested dataclass fields expanded in place."""
    found: list[ParameterField] = []
    _collect(config_type, (), found)
    names = [f.name for f in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TypeError(f"{config_type.__name__}: ROS parameter name(s) {duplicates} used by more than one field")
    return found


def _collect(config_type: type, path: tuple[str, ...], found: list[ParameterField]) -> None:
    hints = typing.get_type_hints(config_type)
    for field in dataclasses.fields(config_type):
        spec = field.metadata.get(SPEC)
        if spec is not None:
            found.append(ParameterField(field.metadata.get(NAME, field.name), (*path, field.name), spec,
                                        field.default, hints[field.name]))
        elif dataclasses.is_dataclass(hints[field.name]):
            _collect(hints[field.name], (*path, field.name), found)


def parameter_specs(config_type: type) -> dict[str, ParameterSpec]:
    return {f.name: f.spec for f in parameter_fields(config_type)}


def parameter_defaults(config_type: type) -> dict[str, Any]:
    """Flat ROS name -> default of every parameter of ``config_type`` (a TypeError if one has none)."""
    return parameter_values(config_type())


def parameter_values(config: Any) -> dict[str, Any]:
    """Flat ROS name -> value of every parameter of the config instance ``config``."""
    values = {}
    for field in parameter_fields(type(config)):
        value = config
        for attribute in field.path:
            value = getattr(value, attribute)
        values[field.name] = value
    return values


def check_parameters(config: Any) -> None:
    """ValueError when a parameter of ``config`` is outside its range or choices."""
    specs = parameter_specs(type(config))
    for name, value in parameter_values(config).items():
        specs[name].check(name, value)


def from_parameters(config_type: type, values: Mapping[str, Any], base: Any = None) -> Any:
    """``config_type`` from flat ROS parameter values; a parameter not in ``values`` keeps its value in ``base``
    (or its default without one). Fields that are no parameters keep theirs too. ValueError for unknown names,
    TypeError/ValueError from the configs' own checks."""
    unknown = sorted(set(values) - {f.name for f in parameter_fields(config_type)})
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {config_type.__name__}")
    return _build(config_type, values, base)


def _build(config_type: type, values: Mapping[str, Any], base: Any) -> Any:
    hints = typing.get_type_hints(config_type)
    arguments = {}
    for field in dataclasses.fields(config_type):
        if not field.init:
            continue
        spec = field.metadata.get(SPEC)
        name = field.metadata.get(NAME, field.name)
        if spec is not None and name in values:
            arguments[field.name] = values[name]
        elif spec is None and dataclasses.is_dataclass(hints[field.name]):
            arguments[field.name] = _build(hints[field.name], values,
                                           getattr(base, field.name) if base is not None else None)
        elif base is not None:
            arguments[field.name] = getattr(base, field.name)
    return config_type(**arguments)


# -- documentation -----------------------------------------------------------------------------------------------
def _format_default(value: Any) -> str:
    return '`""`' if value == "" else f"`{value}`"


def _format_constraint(spec: ParameterSpec) -> str:
    if spec.choices:
        return " \\| ".join(spec.choices)
    if spec.range is not None:
        return f"[{spec.range[0]}, {spec.range[1]}]"
    return ""


def markdown_table(config_type: type, defaults: Any = None, detailed: bool = True) -> str:
    """docs/parameters.md's table of the parameters of ``config_type``, with the defaults of the instance ``defaults``
    (``config_type()`` when None). ``detailed``: also the range/choices and runtime-change columns."""
    values = parameter_values(defaults if defaults is not None else config_type())
    if detailed:
        lines = ["| parameter | default | range / choices | runtime change | description |", "|---|---|---|---|---|"]
    else:
        lines = ["| parameter | default | description |", "|---|---|---|"]
    for field in parameter_fields(config_type):
        default = _format_default(values[field.name])
        if detailed:
            runtime = "no (restart)" if field.spec.read_only else "yes"
            lines.append(f"| `{field.name}` | {default} | {_format_constraint(field.spec)} | {runtime} | "
                         f"{field.spec.description} |")
        else:
            lines.append(f"| `{field.name}` | {default} | {field.spec.description} |")
    return "\n".join(lines) + "\n"
