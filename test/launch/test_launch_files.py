"""Launch files: statically checked everywhere, and what they decide beyond wiring (rt1_ros/node/launch_arguments.py)
tested as functions; evaluated with launch's own API where launch and launch_ros import (they are not on PyPI)."""
from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from rt1_ros.node.launch_arguments import (FASTDDS_PROFILE_VARIABLE, FASTRTPS_PROFILE_VARIABLE, NOT_GIVEN,
                                           RT1_PARAMETER_ARGUMENTS, given_parameters, profile_variables, user_profile)
from rt1_ros.node.parameters import PARAMETER_SPECS

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"
LAUNCH_FILES = sorted(p.name for p in LAUNCH_DIR.glob("*.launch.py"))


def test_rt1_launch_arguments_name_real_parameters_and_topics():
    path = LAUNCH_DIR / "rt1.launch.py"
    tree = ast.parse(path.read_text())
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    for name, _ in RT1_PARAMETER_ARGUMENTS:
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


def test_only_the_parameter_arguments_given_become_parameters():
    """Left out, an argument passes nothing (params_file's value holds); given, it is typed as the node declares it.
    An empty checkpoint, given, is the user's choice of an untrained model."""
    nothing = {name: NOT_GIVEN for name, _ in RT1_PARAMETER_ARGUMENTS}
    assert given_parameters(nothing) == {}
    given = given_parameters({**nothing, "use_sim_time": "True", "checkpoint": "", "start_enabled": "false"})
    assert given == {"use_sim_time": True, "checkpoint": "", "start_enabled": False}
    assert given_parameters({**nothing, "model_size": "tiny", "device": "cpu"}) == {"model_size": "tiny",
                                                                                    "device": "cpu"}
    with pytest.raises(ValueError, match="start_enabled"):
        given_parameters({**nothing, "start_enabled": "yes please"})


def test_rt1_launch_declares_the_parameter_arguments_not_given_and_passes_only_the_given_ones():
    """Read from the file (launch is not installable here): each parameter argument defaults to NOT_GIVEN, and the
    node's parameters are params_file plus `given_parameters` of the arguments, nothing with a launch default."""
    tree = ast.parse((LAUNCH_DIR / "rt1.launch.py").read_text())
    declarations = [c.elt for c in ast.walk(tree) if isinstance(c, ast.ListComp)
                    and ast.unparse(c.generators[0].iter) == "RT1_PARAMETER_ARGUMENTS"
                    and isinstance(c.elt, ast.Call) and getattr(c.elt.func, "id", "") == "DeclareLaunchArgument"]
    assert len(declarations) == 1
    default = next(k.value for k in declarations[0].keywords if k.arg == "default_value")
    assert ast.unparse(default) == "NOT_GIVEN", "the parameter arguments must default to NOT_GIVEN"
    source = ast.unparse(tree)
    assert "given_parameters({name: LaunchConfiguration(name).perform(context) for name, _ in " \
           "RT1_PARAMETER_ARGUMENTS})" in source
    assert "ParameterValue" not in source, "a typed launch default would override params_file"


def launched_nodes(name: str, arguments: dict[str, str]) -> list:
    """``name``'s launch description as `ros2 launch rt1_ros <name> key:=value ...` runs it, short of starting
    processes: each action visited in order in one LaunchContext (launch's own API; SetEnvironmentVariable sets
    os.environ, as under ros2 launch); returns the launch_ros Node actions with their substitutions performed."""
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; runs on a ROS machine")
    from launch import LaunchContext
    from launch_ros.actions import Node

    context = LaunchContext()
    context.launch_configurations.update(arguments)
    pending = list(load_launch_module(LAUNCH_DIR / name).generate_launch_description().entities)
    nodes = []
    while pending:
        entity = pending.pop(0)
        if isinstance(entity, Node):
            entity._perform_substitutions(context)  # what Node.execute does first: names, parameters, remappings
            nodes.append(entity)
        else:
            pending[:0] = entity.visit(context) or []
    return nodes


def parameter_sources(node) -> list[dict]:
    """A launched node's parameter sources in command-line order, each as {parameter: value}. launch_ros keeps the
    expanded list privately (no getter): (path, True) for a params file, (rule, False) for name:=value."""
    sources = []
    for argument, is_file in node._Node__expanded_parameter_arguments:
        if is_file:
            document = yaml.safe_load(Path(argument).read_text())
            sources.append({k: v for entry in document.values() for k, v in entry["ros__parameters"].items()})
        else:
            name, _, value = argument.partition(":=")
            sources.append({name: yaml.safe_load(value)})
    return sources


def test_rt1_launch_evaluated_gives_params_file_then_only_the_arguments_given(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("rt1_node:\n  ros__parameters:\n    model_size: tiny\n    checkpoint: /models/mine\n"
                    "    device: cpu\n    start_enabled: true\n")
    in_file = {"model_size": "tiny", "checkpoint": "/models/mine", "device": "cpu", "start_enabled": True}
    (node,) = launched_nodes("rt1.launch.py", {"params_file": str(mine)})
    assert parameter_sources(node) == [in_file]
    (node,) = launched_nodes("rt1.launch.py", {"params_file": str(mine), "start_enabled": "false",
                                               "use_sim_time": "true"})
    assert parameter_sources(node) == [in_file, {"start_enabled": False, "use_sim_time": True}]


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_description_builds_where_launch_ros_exists(name):
    nodes = launched_nodes(name, {})
    assert "rt1_node" in {node.node_name.rsplit("/", 1)[-1] for node in nodes}


@pytest.mark.parametrize("name", LAUNCH_FILES)
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


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_files_load_the_fast_dds_profile(name):
    source = (LAUNCH_DIR / name).read_text()
    assert "SetEnvironmentVariable" in source and '"fastdds.xml"' in source
    assert "user_profile(os.environ, distro)" in source and "profile_variables(distro)[0]" in source


def test_a_profile_the_user_set_in_either_variable_is_kept():
    """As scripts/env.sh: FASTRTPS_DEFAULT_PROFILES_FILE (the Fast DDS 2.x name, still read by 3.x) counts too; the
    distro's own variable first; empty is unset."""
    mine, theirs = "/home/me/mine.xml", "/home/me/theirs.xml"
    assert user_profile({FASTRTPS_PROFILE_VARIABLE: mine}, "kilted") == mine
    assert user_profile({FASTDDS_PROFILE_VARIABLE: mine}, "jazzy") == mine
    both = {FASTDDS_PROFILE_VARIABLE: mine, FASTRTPS_PROFILE_VARIABLE: theirs}
    assert user_profile(both, "kilted") == mine and user_profile(both, "humble") == theirs
    assert user_profile({FASTDDS_PROFILE_VARIABLE: ""}, "kilted") is None and user_profile({}, "kilted") is None
    assert profile_variables("kilted")[0] == FASTDDS_PROFILE_VARIABLE
    assert profile_variables("jazzy")[0] == FASTRTPS_PROFILE_VARIABLE


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_evaluated_keeps_a_fastrtps_profile_the_user_set(name, tmp_path, monkeypatch):
    for variable in (FASTDDS_PROFILE_VARIABLE, FASTRTPS_PROFILE_VARIABLE):
        monkeypatch.delenv(variable, raising=False)  # restored after the test, whatever launch set
    mine = tmp_path / "mine.xml"
    monkeypatch.setenv(FASTRTPS_PROFILE_VARIABLE, str(mine))
    launched_nodes(name, {})
    assert os.environ[profile_variables(os.environ.get("ROS_DISTRO", ""))[0]] == str(mine)


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
