"""What the launch files (launch/) decide beyond wiring, here so that it is tested where `launch` is not installed
(the PyPI ROS wheels have no launch/launch_ros): which launch arguments become rt1_node parameters, and which
environment variable carries the Fast DDS profile to the launched nodes. Standard library only: `ros2 launch` imports
this module while it builds the launch description.

Parameter precedence in rt1.launch.py, lowest first: the node's defaults, `params_file`, the launch arguments the user
gave. An argument left out stays NOT_GIVEN and sets nothing, so it cannot override the user's params file with a
launch default (a checkpoint in the file would otherwise become "", an untrained model).
"""
from __future__ import annotations

from typing import Mapping

NOT_GIVEN = "from_params_file"  # the launch arguments' default: take the value from params_file

# (launch argument = rt1_node parameter, type)
RT1_PARAMETER_ARGUMENTS: tuple[tuple[str, type], ...] = (
    ("use_sim_time", bool),
    ("device", str),
    ("checkpoint", str),
    ("model_size", str),
    ("start_enabled", bool),
)

# Fast DDS reads its XML profile from FASTDDS_DEFAULT_PROFILES_FILE (3.x: Kilted on) or FASTRTPS_DEFAULT_PROFILES_FILE
# (2.x: Humble, Iron, Jazzy; 3.x still reads it, with a deprecation warning).
FASTDDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
FASTRTPS_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def given_parameters(values: Mapping[str, str]) -> dict[str, bool | str]:
    """The rt1_node parameters of the launch arguments the user gave: ``values`` maps each argument of
    RT1_PARAMETER_ARGUMENTS to its text as launch evaluated it; NOT_GIVEN ones are left out. ValueError for a bool
    argument that is neither true nor false."""
    parameters: dict[str, bool | str] = {}
    for name, kind in RT1_PARAMETER_ARGUMENTS:
        text = values[name]
        if text == NOT_GIVEN:
            continue
        if kind is bool:
            if text.strip().lower() not in ("true", "false"):
                raise ValueError(f"launch argument {name}:={text!r}: expected true or false")
            parameters[name] = text.strip().lower() == "true"
        else:
            parameters[name] = text
    return parameters


def profile_variables(distro: str) -> tuple[str, str]:
    """Both Fast DDS profile variables, the one this distro's Fast DDS reads first: the launch files set that one
    for the nodes they start."""
    if distro in FAST_DDS_2_DISTROS:
        return FASTRTPS_PROFILE_VARIABLE, FASTDDS_PROFILE_VARIABLE
    return FASTDDS_PROFILE_VARIABLE, FASTRTPS_PROFILE_VARIABLE


def user_profile(environment: Mapping[str, str], distro: str) -> str | None:
    """The Fast DDS profile the user already set in either variable (the distro's own first), kept by the launch
    files as scripts/env.sh keeps it; None when neither is set (then config/fastdds.xml). Empty counts as unset."""
    for name in profile_variables(distro):
        if environment.get(name):
            return environment[name]
    return None
