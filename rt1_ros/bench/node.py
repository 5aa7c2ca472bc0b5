"""The node section: image message in → Twist out over real topics with rt1_node in its own process, as on a robot,
minus the model time the node reports in rt1_action.inference_ms = node overhead.

This process plays the camera and the Twist's consumer: it publishes one frame, waits for the Twist and the
RT1Action answering it (control_trigger: image), then sends the next, so the latency is never a queue's.

rclpy's EventsExecutor (rclpy.experimental) was tried in place of the SingleThreadedExecutor and cannot run
rt1_node: on Kilted its spin raises "SystemError: null argument to internal routine" on the first message to a
subscription whose callback takes the MessageInfo, which the instruction subscription needs (the source timestamp
decides which of two latched instructions is newest).
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rt1_ros.configuration.action_layout import MODE_DIM, ActionSpaceConfig
from rt1_ros.bench.config import BenchConfig, NodeBenchConfig
from rt1_ros.bench.fixtures import INSTRUCTION, camera_frames, untrained_model
from rt1_ros.bench.measurement import Skipped, summarise_ms
from rt1_ros.bench.node_subprocess import NodeProcess


@dataclass
class NodeResult:
    model_size: str
    image: str
    transport: str
    backend: str
    image_in_to_twist_out_ms: list[float]
    model_inference_ms: list[float]

    @property
    def node_overhead_ms(self) -> list[float]:
        return [total - model for total, model in zip(self.image_in_to_twist_out_ms, self.model_inference_ms)]

    def as_dict(self) -> dict[str, Any]:
        return {"model_size": self.model_size, "image": self.image, "transport": self.transport,
                "backend": self.backend, "image_in_to_twist_out_ms": summarise_ms(self.image_in_to_twist_out_ms),
                "model_inference_ms": summarise_ms(self.model_inference_ms),
                "node_overhead_ms": summarise_ms(self.node_overhead_ms)}

    def format(self) -> list[str]:
        overhead = summarise_ms(self.node_overhead_ms)
        return ["", f"node path ({self.model_size}, {self.image}, {self.transport}, {self.backend}): image->Twist "
                    f"median {summarise_ms(self.image_in_to_twist_out_ms)['median']:.1f} ms, model "
                    f"{summarise_ms(self.model_inference_ms)['median']:.1f} ms, overhead median "
                    f"{overhead['median']:.2f} / p90 {overhead['p90']:.2f} ms"]


def skipped(reason: str) -> Skipped:
    return Skipped(reason, "node path: skipped ({reason})", blank_line_before=True)


def bench_node(config: BenchConfig) -> NodeResult | Skipped:
    """rt1_node as its own process; this process publishes the images and receives the Twists."""
    try:
        import rclpy  # noqa: F401

        from rt1_ros.msg import RT1Action  # noqa: F401
    except ImportError as exc:
        return skipped(f"ROS 2 Python or the built messages are missing ({exc}); run `make setup`")
    settings = config.node
    with tempfile.TemporaryDirectory(prefix="rt1-bench-") as directory:
        checkpoint = _always_stepping_checkpoint(settings.model_size, Path(directory))
        try:
            return _measure(settings, checkpoint, f"/rt1_bench_{os.getpid()}")
        except RuntimeError as exc:
            return skipped(str(exc))


def _measure(settings: NodeBenchConfig, checkpoint: Path, namespace: str) -> NodeResult:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    parameters = dict(checkpoint=str(checkpoint), device="cpu", control_trigger="image", start_enabled="true",
                      ema_alpha="1.0", image_timeout_s="60.0", image_reliability="reliable")
    with NodeProcess(namespace, parameters) as node_process:
        context = rclpy.Context()
        rclpy.init(context=context)
        peer = rclpy.create_node("rt1_bench_camera", namespace=namespace, context=context)
        spinner = SingleThreadedExecutor(context=context)
        spinner.add_node(peer)
        spin_thread = threading.Thread(target=spinner.spin, daemon=True)
        spin_thread.start()
        try:
            return _exchange(settings, node_process, peer)
        finally:
            spinner.shutdown()
            spin_thread.join(timeout=10)
            peer.destroy_node()
            rclpy.try_shutdown(context=context)


def _exchange(settings: NodeBenchConfig, node_process: NodeProcess, peer) -> NodeResult:
    """Prime the node until it answers with motion, then the timed one-frame-at-a-time exchange."""
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from rt1_ros.msg import RT1Action
    from rt1_ros.node.qos import LATCHED

    def failure(what: str) -> RuntimeError:
        return RuntimeError(f"{what}; rt1_node's log ends: {node_process.log_tail()}")

    arrivals = _Arrivals()
    peer.create_subscription(Twist, "cmd_vel", arrivals.recorder("twist"), 10)
    peer.create_subscription(RT1Action, "rt1_action", arrivals.recorder("action"), 10)
    image_publisher = peer.create_publisher(Image, "image", 10)
    peer.create_publisher(String, "instruction", LATCHED).publish(String(data=INSTRUCTION))
    if not _wait(lambda: image_publisher.get_subscription_count() > 0 or node_process.poll() is not None,
                 settings.timeout_s) or node_process.poll() is not None:
        raise failure(f"rt1_node did not subscribe to the camera within {settings.timeout_s:g} s")
    frames = camera_frames(8, max(settings.image_width, settings.image_height), seed=1)
    frames = frames[:, :settings.image_height, :settings.image_width]
    # The instruction may reach the node after the first frames: send one frame at a time until one is answered
    # with motion, then the timed exchange starts.
    primed = False
    for attempt in range(int(settings.timeout_s / 0.5)):
        twists_before = arrivals.count("twist")
        image_publisher.publish(_image_message(Image, frames[0], settings, stamp_sec=attempt + 1))
        if arrivals.wait_for_reply(twists_before, attempt + 1, 0.5) is not None:
            primed = True
            break
    if not primed:
        raise failure(f"rt1_node answered no frame with a Twist within {settings.timeout_s:g} s")
    end_to_end, model_ms = [], []
    for i in range(settings.warmup_messages + settings.messages):
        stamp = 1000 + i
        message = _image_message(Image, frames[i % len(frames)], settings, stamp_sec=stamp)
        twists_before = arrivals.count("twist")
        sent = time.perf_counter()
        image_publisher.publish(message)
        reply = arrivals.wait_for_reply(twists_before, stamp, settings.timeout_s)
        if reply is None:
            raise failure(f"no Twist for image {i} within {settings.timeout_s:g} s")
        received, action = reply
        if i < settings.warmup_messages:
            continue
        end_to_end.append((received - sent) * 1000.0)
        model_ms.append(action.inference_ms)
    return NodeResult(model_size=settings.model_size,
                      image=f"{settings.image_width}x{settings.image_height} rgb8",
                      transport=f"{os.environ.get('RMW_IMPLEMENTATION', 'default rmw')}, node in its own process",
                      backend=node_process.backend(), image_in_to_twist_out_ms=end_to_end,
                      model_inference_ms=model_ms)


def _always_stepping_checkpoint(model_size: str, directory: Path) -> Path:
    from rt1_ros.model.checkpoint import save_pretrained

    model = untrained_model(model_size)
    with torch.no_grad():
        # An untrained mode head may pick "terminate", after which the node stops stepping the model; pin
        # "base" so every image runs a full control step.
        action_space = ActionSpaceConfig.from_yaml()
        model.action_head.heads[MODE_DIM].bias[action_space.mode_index("base")] += 50.0
    return save_pretrained(model, directory / "policy", action_space)


def _image_message(image_type, frame: np.ndarray, settings: NodeBenchConfig, stamp_sec: int):
    message = image_type(height=settings.image_height, width=settings.image_width, encoding="rgb8",
                         is_bigendian=0, step=settings.image_width * 3)
    message.data = frame.tobytes()
    message.header.stamp.sec = stamp_sec
    message.header.frame_id = "camera"
    return message


class _Arrivals:
    """(perf_counter, message) of every Twist and RT1Action the peer receives, guarded by a condition."""

    def __init__(self) -> None:
        self._by_kind: dict[str, list] = defaultdict(list)
        self._arrived = threading.Condition()

    def recorder(self, kind: str) -> Callable[[Any], None]:
        def callback(message) -> None:
            with self._arrived:
                self._by_kind[kind].append((time.perf_counter(), message))
                self._arrived.notify_all()
        return callback

    def count(self, kind: str) -> int:
        with self._arrived:
            return len(self._by_kind[kind])

    def wait_for_reply(self, twists_before: int, stamp_sec: int, timeout: float) -> tuple[float, Any] | None:
        """(arrival time of the first new Twist, the RT1Action stamped ``stamp_sec``), or None on timeout."""
        def replied() -> bool:
            return (len(self._by_kind["twist"]) > twists_before
                    and any(a[1].header.stamp.sec == stamp_sec for a in self._by_kind["action"]))

        with self._arrived:
            if not self._arrived.wait_for(replied, timeout=timeout):
                return None
            received = self._by_kind["twist"][twists_before][0]
            action = next(a[1] for a in self._by_kind["action"] if a[1].header.stamp.sec == stamp_sec)
            return received, action


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
