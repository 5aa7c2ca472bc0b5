"""Declare a node's ROS parameters from its config's fields, with descriptions, ranges and read-only flags.

rclpy enforces the declared ranges and read-only flags on every later update and answers a refused update with a
reason, so nodes only check what a descriptor cannot express (string choices, cross-field rules).
"""
from __future__ import annotations

from typing import TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node

from rt1_ros.configuration.parameter_spec import ParameterSpec, from_parameters, parameter_fields, parameter_values

C = TypeVar("C")


def descriptor(spec: ParameterSpec, default: object) -> ParameterDescriptor:
    result = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        result.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.range is not None and isinstance(default, float):
        result.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                          to_value=float(spec.range[1]))]
    elif spec.range is not None and isinstance(default, int) and not isinstance(default, bool):
        result.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
    return result


def declare_parameters(node: Node, defaults: C) -> C:
    """Declare every parameter of the config ``defaults`` (a dataclass instance whose fields are made with
    `parameter_spec.parameter`, nested ones included), with its value there as the default; returns the config the
    node starts with (params file, launch arguments and overrides applied).

    Raises ValueError when a value given at start-up is outside its choices or range, or breaks a config's own rule.
    """
    values = parameter_values(defaults)
    for field in parameter_fields(type(defaults)):
        default = values[field.name]
        node.declare_parameter(field.name, default, descriptor(field.spec, default))
        field.spec.check(field.name, node.get_parameter(field.name).value)
    return from_parameters(type(defaults), {f.name: node.get_parameter(f.name).value
                                            for f in parameter_fields(type(defaults))}, base=defaults)


def parameter_update(config: C, parameters, specs: dict[str, ParameterSpec]) -> tuple[C, SetParametersResult]:
    """A node's on-set-parameters check: ``config`` with those of ``parameters`` named in ``specs`` changed, and the
    answer to give; the config is unchanged when the answer refuses (a rule across fields, a string choice)."""
    changes = {p.name: p.value for p in parameters if p.name in specs}
    if not changes:
        return config, SetParametersResult(successful=True)
    try:
        return from_parameters(type(config), changes, base=config), SetParametersResult(successful=True)
    except (TypeError, ValueError) as exc:
        return config, SetParametersResult(successful=False, reason=str(exc))
