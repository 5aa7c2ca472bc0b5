"""`ParameterSpec`: how one ROS parameter is declared (description, range or choices, read-only).

Plain data, free of ROS and torch, so every node can describe its parameters with it: the policy node's table is in
`parameters`, the simulator's in `rt1_ros.sim.sim_node` (which must not pull in torch); `parameter_declaration`
turns a table into rclpy declarations.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParameterSpec:
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False  # needs a restart: model, device, topics' types and QoS
