"""The launch files' `lifecycle` argument, checked by reading them (launch_ros is not on PyPI): it defaults to the
plain node, its substitution picks the executable named, and both executables are installed."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
LAUNCH_FILES = ("rt1.launch.py", "sim.launch.py")
EXECUTABLES = {"true": "rt1_lifecycle_node", "false": "rt1_node"}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def keyword(call: ast.Call, name: str):
    return next(k.value for k in call.keywords if k.arg == name)


def chosen_executable(expression: ast.Call, lifecycle: str) -> str:
    """What launch's PythonExpression evaluates to with the launch argument `lifecycle` set to ``lifecycle``."""
    parts = []
    for element in expression.args[0].elts:
        if isinstance(element, ast.Call):
            assert element.func.id == "LaunchConfiguration" and element.args[0].value == "lifecycle"
            parts.append(lifecycle)
        else:
            parts.append(element.value)
    return eval("".join(parts), {})  # what PythonExpression does with the substituted text


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_lifecycle_argument_defaults_to_the_plain_node_and_picks_the_executable(name):
    tree = ast.parse((REPOSITORY / "launch" / name).read_text())
    argument = next(c for c in calls(tree, "DeclareLaunchArgument") if c.args[0].value == "lifecycle")
    assert keyword(argument, "default_value").value == "false"
    assert ast.literal_eval(keyword(argument, "choices")) == ["true", "false"]
    (expression,) = calls(tree, "PythonExpression")
    for value, executable in EXECUTABLES.items():
        assert chosen_executable(expression, value) == executable
    (rt1,) = [c for c in calls(tree, "Node") if keyword(c, "name").value == "rt1_node"]
    assert isinstance(keyword(rt1, "executable"), ast.Name), "rt1_node's executable must be the lifecycle choice"


@pytest.mark.parametrize("executable", sorted(EXECUTABLES.values()))
def test_both_executables_are_installed(executable):
    script = REPOSITORY / "scripts" / "ros" / executable
    assert f"from rt1_ros.node.{executable} import main" in script.read_text()
    assert re.search(rf"PROGRAMS[^)]*scripts/ros/{executable}\s", (REPOSITORY / "CMakeLists.txt").read_text())
    assert f'"{executable}=rt1_ros.node.{executable}:main"' in (REPOSITORY / "setup.py").read_text()
