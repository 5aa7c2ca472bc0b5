"""Test support for ROS tests: real rclpy over Fast DDS, the node under test and a peer node in one process,
each test in its own namespace. Importable from tests because pytest.ini puts test/ on the path.

The graph is `rt1_ros.node.ros_graph.InProcessGraph`, as in the demo, evaluation and bench: each node spins in its own
single-threaded executor thread. It joins the environment's ROS_DOMAIN_ID (not a private domain), because node
processes the tests start (`NodeProcess`, camera_process.py) must find the peer."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import torch

import rclpy

from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from rt1_ros.node import qos
from rt1_ros.node.ros_graph import InProcessGraph, environment_domain_id, to_stamp
from rt1_ros.model.action_tokenizer import ActionSpaceConfig
from rt1_ros.model.checkpoint import save_pretrained
from rt1_ros.model.rt1 import RT1, RT1Config


def biased_checkpoint(directory: Path, mode: int, bins: dict[int, int]) -> Path:
    """A tiny RT-1 whose heads ignore the input: `mode` always, and dimension d always at bin bins[d] (else 128)."""
    torch.manual_seed(0)
    model = RT1(RT1Config.from_yaml("tiny"))
    with torch.no_grad():
        for dim, head in enumerate(model.action_head.heads):
            head.weight.zero_()
            head.bias.zero_()
            head.bias[mode if dim == 10 else bins.get(dim, 128)] = 50.0
    return save_pretrained(model, directory, ActionSpaceConfig.from_yaml())


class RosHarness:
    def __init__(self) -> None:
        self.graph = InProcessGraph(environment_domain_id())
        self.context = self.graph.context
        self.namespace = ""
        self.peer = None

    def new_namespace(self) -> str:
        self.namespace = f"/t{uuid.uuid4().hex[:8]}"
        self.peer = self.add(rclpy.create_node("peer", namespace=self.namespace, context=self.context))
        return self.namespace

    def add(self, node):
        """Spin ``node`` (made with ``context=ros.context``) in a thread of its own; `remove` or `close` stops it."""
        return self.graph.add(node)

    def start_rt1_node(self, node_class=None, **parameters):
        """rt1_node (or ``node_class``, e.g. the lifecycle node) with the tests' defaults: tiny model on the CPU,
        10 Hz, enabled, no smoothing; ``parameters`` override them."""
        if node_class is None:
            from rt1_ros.node.rt1_node import Rt1Node as node_class

        defaults = dict(model_size="tiny", device="cpu", control_rate_hz=10.0, image_timeout_s=0.5,
                        start_enabled=True, ema_alpha=1.0)
        defaults.update(parameters)
        overrides = [Parameter(k, value=v) for k, v in defaults.items()]
        return self.add(node_class(namespace=self.namespace, context=self.context, parameter_overrides=overrides))

    def remove(self, node) -> None:
        self.graph.remove(node)

    def collect(self, message_type, topic: str, qos_profile=qos.COMMANDS_AND_STATE) -> list:
        received: list = []
        self.peer.create_subscription(message_type, topic, received.append, qos_profile)
        return received

    def send_instruction(self, text: str):
        publisher = self.peer.create_publisher(String, "instruction", qos.LATCHED)
        publisher.publish(String(data=text))
        return publisher

    def close(self) -> None:
        self.graph.close()


def wait_for(predicate, timeout: float = 10.0, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


def make_image(encoding: str = "rgb8", width: int = 64, height: int = 48, padding: int = 0, stamp_ns: int = 0,
               seed: int = 0) -> Image:
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(encoding, 3)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, size=(height, width * channels + padding), dtype=np.uint8)
    message = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=width * channels + padding)
    message.data = rows.tobytes()
    message.header.stamp = to_stamp(stamp_ns)
    message.header.frame_id = "camera"
    return message




class NodeProcess:
    """`python -m rt1_ros.node.rt1_node` as its own process, the way `ros2 run` starts it: signals, exit codes,
    start-up failures, memory and files written are only observable on a real process."""

    def __init__(self, namespace: str, parameters: dict, env: dict | None = None, cwd: str | Path | None = None,
                 python_prefix: list[str] | None = None, remappings: dict[str, str] | None = None,
                 params_files: list[str | Path] = ()) -> None:
        import os
        import subprocess
        import sys
        import tempfile

        arguments = ["--ros-args", "-r", f"__ns:={namespace}"]
        for name, target in (remappings or {}).items():
            arguments += ["-r", f"{name}:={target}"]
        for path in params_files:  # in order, before -p: a later source overrides an earlier one
            arguments += ["--params-file", str(path)]
        for name, value in parameters.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            arguments += ["-p", f"{name}:={text}"]
        launcher = python_prefix or ["-m", "rt1_ros.node.rt1_node"]
        self._output = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, *launcher, *arguments], stdout=self._output,
                                        stderr=subprocess.STDOUT, env=env or os.environ.copy(), cwd=cwd, text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        """Resident memory now (the re-executed interpreter keeps the pid: ros-wheels-bootstrapper uses exec)."""
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise RuntimeError("VmRSS not found")

    def output(self) -> str:
        self._output.flush()
        self._output.seek(0)
        return self._output.read()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._output.close()


class SimTimeRig:
    """An in-process rt1_node under ``use_sim_time`` whose /clock and camera the test drives, one message at a time,
    and whose rt1_action answers it reads: time moves only when the test says."""

    def __init__(self, ros: RosHarness, checkpoint: Path, timeout: float = 60.0, **parameters) -> None:
        from rosgraph_msgs.msg import Clock

        from rt1_ros.msg import RT1Action
        from rt1_ros.node.rt1_node import Rt1Node

        ros.new_namespace()
        settings = dict(checkpoint=str(checkpoint), device="cpu", use_sim_time=True, image_reliability="reliable",
                        start_enabled=True, ema_alpha=1.0)
        settings.update(parameters)
        self.ros, self.timeout, self._clock_type = ros, timeout, Clock
        self.node = ros.add(Rt1Node(namespace=ros.namespace, context=ros.context,
                                    parameter_overrides=[Parameter(k, value=v) for k, v in settings.items()],
                                    cli_args=["--ros-args", "-r", f"/clock:={ros.namespace}/clock"]))
        self.actions: list = []
        ros.peer.create_subscription(RT1Action, "rt1_action", self.actions.append, 50)
        self.clock = ros.peer.create_publisher(Clock, "clock", qos.COMMANDS_AND_STATE)
        self.camera = ros.peer.create_publisher(Image, "image", qos.camera("reliable"))

    def set_clock(self, seconds: float) -> None:
        """Publish /clock at ``seconds`` and wait until the node's clock reads it."""
        nanoseconds = round(seconds * 1e9)
        self.clock.publish(self._clock_type(clock=to_stamp(nanoseconds)))
        assert wait_for(lambda: self.node.get_clock().now().nanoseconds == nanoseconds, timeout=self.timeout)

    def send_frame(self, seconds: float) -> None:
        """Publish a frame stamped ``seconds`` (its pixels differ with the stamp)."""
        nanoseconds = round(seconds * 1e9)
        self.camera.publish(make_image(stamp_ns=nanoseconds, seed=nanoseconds % 1000))

    def answer_to(self, seconds: float):
        """The node's rt1_action answering the frame stamped ``seconds`` (waited for)."""
        nanoseconds = round(seconds * 1e9)

        def answers(action) -> bool:
            return action.header.stamp.sec * 1_000_000_000 + action.header.stamp.nanosec == nanoseconds

        assert wait_for(lambda: any(answers(a) for a in self.actions), timeout=self.timeout), \
            f"no answer to the frame at {seconds} s"
        return next(a for a in self.actions if answers(a))

    def close(self) -> None:
        self.ros.remove(self.node)


class MessageStream:
    """Publishes ``make_message(index)`` on ``topic`` from the peer at a fixed period until stopped; ``sent`` holds
    what each tick published (the message, or the raw bytes for serialized ones)."""

    def __init__(self, ros: RosHarness, message_type, topic: str, make_message, period: float = 0.05,
                 qos_profile=qos.COMMANDS_AND_STATE) -> None:
        self.publisher = ros.peer.create_publisher(message_type, topic, qos_profile)
        self.make_message = make_message
        self.sent: list = []
        self.timer = ros.peer.create_timer(period, self._tick)

    def _tick(self) -> None:
        message = self.make_message(len(self.sent))
        self.publisher.publish(message)
        self.sent.append(message)

    def stop(self) -> None:
        self.timer.cancel()


def node_log(ros: RosHarness, node_name: str = "rt1_node") -> list:
    """rcl_interfaces/Log lines the node under test sends to /rosout (what `ros2 topic echo /rosout` shows)."""
    from rcl_interfaces.msg import Log

    logger = f"{ros.namespace.strip('/').replace('/', '.')}.{node_name}"
    received: list = []
    ros.peer.create_subscription(Log, "/rosout", lambda m: received.append(m) if m.name == logger else None, 100)
    return received
