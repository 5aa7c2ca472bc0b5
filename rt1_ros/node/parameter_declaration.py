"""Declare a node's ROS parameters from a table of `ParameterSpec`s, with descriptions, ranges and read-only flags.

rclpy enforces the declared ranges and read-only flags on every later update and answers a refused update with a
reason, so nodes only check what a descriptor cannot express (string choices, cross-field rules).
"""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from rt1_ros.node.parameter_spec import ParameterSpec


def declare_parameters(node: Node, specs: dict[str, ParameterSpec], defaults: object) -> None:
    """Declare every parameter in ``specs`` with its default taken from the same-named field of ``defaults``.

    Raises ValueError when a value given at start-up (params file, launch, overrides) is not one of its choices.
    """
    for name, spec in specs.items():
        default = getattr(defaults, name)
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        if spec.choices:
            descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
        if spec.range is not None and isinstance(default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                                  to_value=float(spec.range[1]))]
        elif spec.range is not None and isinstance(default, int) and not isinstance(default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
        node.declare_parameter(name, default, descriptor)
        value = node.get_parameter(name).value
        if spec.choices and value not in spec.choices:
            raise ValueError(f"parameter {name} must be one of {spec.choices}, got {value!r}")
