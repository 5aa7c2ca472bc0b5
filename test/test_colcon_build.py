"""The real ROS 2 workspace build: `colcon build` and `colcon build --symlink-install` of this package in a temporary
workspace, then the install tree used the way a robot uses it (`source install/setup.bash`, the messages import,
`lib/rt1_ros/rt1_node` starts and answers on its topics and services).

colcon and its extensions are pinned in requirements.txt. Everything the build and the node see comes from the
workspace: the dev tree's own interface build (build/ros/install, put on the paths by scripts/env.sh) is removed from
the environment, so a message import or a typesupport library can only come from the colcon install tree.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from ros_harness import MessageStream, RosHarness, make_image, wait_for  # noqa: E402
from rt1_ros.msg import RT1Action  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ros]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_INTERFACES = REPO_ROOT / "build" / "ros" / "install"
# What package.xml/CMakeLists.txt install: the package as a ROS user would clone it into src/ (without the
# checkout's .venv, datasets and outputs).
PACKAGE_PATHS = ("package.xml", "CMakeLists.txt", "setup.py", "resource", "msg", "srv", "rt1_ros", "launch",
                 "config", "models", "scripts/ros")
BUILD_TIMEOUT_S = 600  # two shared cores; about 30 s when idle
NODE_START_TIMEOUT_S = 180  # interpreter start, torch and text-encoder imports, tiny model build


def workspace_environment(workspace: Path) -> dict[str, str]:
    """This process's environment without the dev tree's interface build, with colcon's state in the workspace."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "LD_LIBRARY_PATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        kept = [part for part in env.get(name, "").split(":") if part and not part.startswith(str(DEV_INTERFACES))]
        env[name] = ":".join(kept)
    env["COLCON_HOME"] = str(workspace / "colcon_home")  # no user-level colcon defaults
    env.pop("COLCON_PREFIX_PATH", None)
    return env


def in_workspace_shell(command: str) -> list[str]:
    """`bash -c` that sources the install tree first, as a user's shell would."""
    return ["bash", "-c", f"source install/setup.bash && {command}"]


class ColconWorkspace:
    def __init__(self, root: Path, symlink_install: bool) -> None:
        self.root = root
        self.symlink_install = symlink_install
        self.source = root / "src" / "rt1_ros"
        self.install = root / "install"
        self.env = workspace_environment(root)

    def populate(self) -> None:
        for relative in PACKAGE_PATHS:
            source, target = REPO_ROOT / relative, self.source / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, target)

    def build(self) -> subprocess.CompletedProcess:
        colcon = Path(sys.executable).parent / "colcon"
        command = [str(colcon), "build", "--event-handlers", "console_direct+"]
        if self.symlink_install:
            command.append("--symlink-install")
        return subprocess.run(command, cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)

    def shell(self, command: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(in_workspace_shell(command), cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module", params=[False, True], ids=["copy-install", "symlink-install"])
def workspace(request):
    root = Path(tempfile.mkdtemp(prefix="rt1_colcon_ws_"))
    try:
        built = ColconWorkspace(root, symlink_install=request.param)
        built.populate()
        result = built.build()
        assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        yield built
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_install_tree_layout(workspace):
    package = workspace.install / "rt1_ros"
    # Every ROS executable of scripts/ros/ (rt1_node, sim_node, ...) where `ros2 run` and launch files look.
    for source in (REPO_ROOT / "scripts" / "ros").iterdir():
        executable = package / "lib" / "rt1_ros" / source.name
        assert executable.is_file() and os.access(executable, os.X_OK), executable
    for shared in ("launch/rt1.launch.py", "config/rt1.yaml", "models/rt1_sim/config.yaml", "package.xml"):
        assert (package / "share" / "rt1_ros" / shared).exists(), shared
    python_package = package / "lib" / "python3.11" / "site-packages" / "rt1_ros"
    assert (python_package / "msg" / "_rt1_action.py").is_file()
    # --symlink-install links the Python sources back into src/ (edit, rerun, no rebuild); a plain build copies.
    node_module = python_package / "node" / "rt1_node.py"
    assert node_module.is_symlink() == workspace.symlink_install
    assert node_module.resolve() == (workspace.source / "rt1_ros" / "node" / "rt1_node.py").resolve() \
        or not workspace.symlink_install


def test_sourced_install_tree_provides_messages_and_package_index(workspace):
    probe = (
        "import rt1_ros, rt1_ros.msg, rt1_ros.srv; "
        "from ament_index_python.packages import get_package_share_directory as share; "
        "from rt1_ros.msg import ArmCommand, RT1Action, EpisodeStatus; from rt1_ros.srv import ResetEpisode; "
        "from rclpy.serialization import serialize_message, deserialize_message; "
        "m = RT1Action(); m.mode = 2; assert deserialize_message(serialize_message(m), RT1Action).mode == 2; "
        "print(rt1_ros.__file__); print(rt1_ros.msg.__file__); print(share('rt1_ros'))"
    )
    result = workspace.shell(f"python -c {shlex.quote(probe)}")
    assert result.returncode == 0, result.stdout + result.stderr
    package_file, messages_file, share = result.stdout.strip().splitlines()[-3:]
    # Import paths as Python sees them (under --symlink-install the files behind them live in build/ and src/).
    assert Path(messages_file).is_relative_to(workspace.install), messages_file
    assert Path(package_file).is_relative_to(workspace.install), package_file  # the installed package, not the checkout
    assert Path(share).is_relative_to(workspace.install), share


def mapped_libraries(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        return {line.split()[-1] for line in maps if "/" in line}


def test_installed_rt1_node_runs_and_answers(workspace):
    """The installed executable (what `ros2 run rt1_ros rt1_node` starts) with a tiny untrained model: it acts on
    camera frames with the instruction, its ~/enable service answers, and SIGINT stops it with exit code 0."""
    ros = RosHarness()
    node = None
    try:
        namespace = ros.new_namespace()
        actions: list = []
        ros.peer.create_subscription(RT1Action, "rt1_action", actions.append, 10)
        ros.send_instruction("pick up the red cube")
        frames = MessageStream(ros, Image, "image", lambda index: make_image(seed=index))
        arguments = (f"--ros-args -r __ns:={namespace} -p model_size:=tiny -p device:=cpu -p start_enabled:=true "
                     "-p control_rate_hz:=10.0 -p image_timeout_s:=5.0")
        with tempfile.TemporaryFile(mode="w+") as output:
            # exec: the signal below reaches the node process itself, not the shell.
            node = subprocess.Popen(
                in_workspace_shell(f"exec install/rt1_ros/lib/rt1_ros/rt1_node {arguments}"),
                cwd=workspace.root, env=workspace.env, stdout=output, stderr=subprocess.STDOUT, text=True)

            def log() -> str:
                output.flush()
                output.seek(0)
                return output.read()[-3000:]

            assert wait_for(lambda: actions or node.poll() is not None, timeout=NODE_START_TIMEOUT_S), \
                f"no rt1_action from the installed rt1_node:\n{log()}"
            assert node.poll() is None, log()
            # The node's message typesupport is the workspace's (install/, or build/ behind --symlink-install's
            # links), not the dev tree's.
            typesupport = [path for path in mapped_libraries(node.pid) if "rt1_ros__rosidl_typesupport" in path]
            assert typesupport, "the node has no rt1_ros typesupport library mapped"
            assert all(Path(path).is_relative_to(workspace.root) for path in typesupport), typesupport

            enable = ros.peer.create_client(SetBool, f"{namespace}/rt1_node/enable")
            assert enable.wait_for_service(timeout_sec=60), log()
            future = enable.call_async(SetBool.Request(data=False))
            assert wait_for(future.done, timeout=60), f"~/enable did not answer:\n{log()}"
            assert future.result().success

            frames.stop()
            node.send_signal(signal.SIGINT)
            started = time.monotonic()
            assert node.wait(timeout=60) == 0, log()
            print(f"installed rt1_node stopped {time.monotonic() - started:.1f} s after SIGINT")
    finally:
        if node is not None and node.poll() is None:
            node.kill()
            node.wait(timeout=10)
        ros.close()
