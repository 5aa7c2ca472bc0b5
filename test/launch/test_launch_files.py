"""Launch files: statically checked everywhere; built with launch_ros where it imports (not on PyPI)."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from rt1_ros.node.parameters import PARAMETER_SPECS

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"




def test_rt1_launch_arguments_name_real_parameters_and_topics():
    path = LAUNCH_DIR / "rt1.launch.py"
    tree = ast.parse(path.read_text())
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    parameter_names = [e.elts[0].value for e in assigned["PARAMETER_ARGUMENTS"].elts]
    for name in parameter_names:
        assert name == "use_sim_time" or name in PARAMETER_SPECS, f"launch argument {name} is no node parameter"
    remapped = ast.literal_eval(assigned["REMAPPED_NAMES"])
    topics = [e.elts[0].value for e in assigned["TOPIC_ARGUMENTS"].elts]
    assert set(topics) == set(remapped)
    node_topics = {"image", "image/compressed", "instruction", "cmd_vel", "arm_command", "servo_twist", "rt1_action"}
    assert set(remapped.values()) == node_topics


def load_launch_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(p.name for p in LAUNCH_DIR.glob("*.launch.py")))
def test_launch_description_builds_where_launch_ros_exists(name):
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; runs on a ROS machine")
    from launch import LaunchDescription
    from launch_ros.actions import Node

    description = load_launch_module(LAUNCH_DIR / name).generate_launch_description()
    assert isinstance(description, LaunchDescription)
    assert any(isinstance(entity, Node) for entity in description.entities)


@pytest.mark.parametrize("name", sorted(p.name for p in LAUNCH_DIR.glob("*.launch.py")))
def test_launch_files_are_valid_python(name):
    compile((LAUNCH_DIR / name).read_text(), name, "exec")


def test_sim_launch_arguments_name_real_parameters():
    from rt1_ros.sim.sim_node import PARAMETER_SPECS as SIM_PARAMETER_SPECS

    tree = ast.parse((LAUNCH_DIR / "sim.launch.py").read_text())
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    for entry in assigned["PARAMETER_ARGUMENTS"].elts:
        name, node = entry.elts[0].value, entry.elts[3].value
        known = SIM_PARAMETER_SPECS if node == "sim_node" else PARAMETER_SPECS
        assert name in known, f"sim.launch.py argument {name} is no parameter of {node}"
