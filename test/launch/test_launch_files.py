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
    from rt1_ros.node.sim_node import PARAMETER_SPECS as SIM_PARAMETER_SPECS

    tree = ast.parse((LAUNCH_DIR / "sim.launch.py").read_text())
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    for entry in assigned["PARAMETER_ARGUMENTS"].elts:
        name, node = entry.elts[0].value, entry.elts[3].value
        known = SIM_PARAMETER_SPECS if node == "sim_node" else PARAMETER_SPECS
        assert name in known, f"sim.launch.py argument {name} is no parameter of {node}"


REPOSITORY = LAUNCH_DIR.parent
FRAME_1080P_RGB8 = 1920 * 1080 * 3


def test_fast_dds_profile_gives_shared_memory_segments_that_hold_1080p_frames():
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(REPOSITORY / "config" / "fastdds.xml").getroot()
    local = {element.tag.split("}")[-1]: element for element in root.iter()}
    assert local["useBuiltinTransports"].text.strip() == "false"
    descriptors = [d for d in root.iter() if d.tag.endswith("transport_descriptor")]
    shm = [d for d in descriptors if any(c.tag.endswith("type") and c.text.strip() == "SHM" for c in d)]
    assert shm, "no shared-memory transport in the profile"
    segment = next(int(c.text) for c in shm[0] if c.tag.endswith("segment_size"))
    assert segment >= 4 * FRAME_1080P_RGB8, "the segment must hold a few 1080p rgb8 frames in flight"
    default_profiles = [p for p in root.iter() if p.tag.endswith("participant")
                        and p.get("is_default_profile") == "true"]
    assert default_profiles, "rmw_fastrtps only applies a participant profile marked as the default"


@pytest.mark.parametrize("name", sorted(p.name for p in LAUNCH_DIR.glob("*.launch.py")))
def test_launch_files_load_the_fast_dds_profile(name):
    source = (LAUNCH_DIR / name).read_text()
    assert "SetEnvironmentVariable" in source and '"fastdds.xml"' in source
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in source and "FASTRTPS_DEFAULT_PROFILES_FILE" in source


def test_env_sh_sets_the_profile_and_keeps_one_already_set(tmp_path):
    import os
    import subprocess

    script = REPOSITORY / "scripts" / "env.sh"
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_DEFAULT_PROFILES_FILE")}

    def profile(extra: dict) -> str:
        return subprocess.run(["bash", "-c", f"source {script} && echo \"$FASTDDS_DEFAULT_PROFILES_FILE\""],
                              env={**clean, **extra}, capture_output=True, text=True, check=True).stdout.strip()

    assert Path(profile({})) == (REPOSITORY / "config" / "fastdds.xml").resolve()
    assert profile({"FASTDDS_DEFAULT_PROFILES_FILE": str(tmp_path / "mine.xml")}) == str(tmp_path / "mine.xml")
    assert profile({"FASTRTPS_DEFAULT_PROFILES_FILE": str(tmp_path / "mine.xml")}) == ""
