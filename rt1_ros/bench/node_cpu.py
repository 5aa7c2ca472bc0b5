"""The node_cpu section: how much CPU rt1_node's process takes while a camera in another process streams at full rate
and the node controls at its own rate, on the shipped model, per inference backend.

The node and a camera driver (`rt1_ros.bench.camera_process`) run as their own processes, as on a robot. After the
first actions and a settling time, the node's CPU time (/proc/<pid>/stat utime + stime) is read over a window, with
the control steps and the inference times it published meanwhile. What it should cost: about inference × control
rate, plus receiving and decoding the frames it uses; not a core (a busy executor would burn one).
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from rt1_ros.bench.config import BenchConfig, NodeCpuBenchConfig
from rt1_ros.bench.measurement import Skipped
from rt1_ros.bench.node_subprocess import NodeProcess, interrupt_when_parent_dies, stop_processes

INSTRUCTION = "pick up the red cube"


@dataclass
class BackendCpu:
    backend: str
    node_cpu_fraction_of_a_core: float
    control_steps_per_s: float
    inference_ms_mean: float
    window_s: float

    @property
    def inference_x_rate(self) -> float:
        """The share of a core the model alone needs at the measured rate (inference_ms is wall time: on a loaded
        machine this overstates the model's CPU)."""
        return self.inference_ms_mean / 1000.0 * self.control_steps_per_s

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "node_cpu_fraction_of_a_core": round(self.node_cpu_fraction_of_a_core, 4),
                "control_steps_per_s": round(self.control_steps_per_s, 2),
                "inference_ms_mean": round(self.inference_ms_mean, 2),
                "inference_x_rate_fraction_of_a_core": round(self.inference_x_rate, 4),
                "window_s": round(self.window_s, 1)}


@dataclass
class NodeCpuResult:
    config: NodeCpuBenchConfig
    runs: list[BackendCpu | Skipped]

    def as_dict(self) -> dict[str, Any]:
        camera = f"{self.config.image_width}x{self.config.image_height} rgb8 at {self.config.camera_fps:g} fps"
        return {"camera": camera, "control_rate_hz": self.config.control_rate_hz,
                "backends": {name: run.as_dict() for name, run in zip(self.config.backends, self.runs)}}

    def format(self) -> list[str]:
        lines = ["", f"node process CPU (shipped model, camera process {self.config.image_width}x"
                     f"{self.config.image_height} at {self.config.camera_fps:g} fps, control "
                     f"{self.config.control_rate_hz:g} Hz, 1 inference thread):"]
        for name, run in zip(self.config.backends, self.runs):
            if isinstance(run, Skipped):
                lines += [f"  {name}: " + line.strip() for line in run.format()]
            else:
                lines.append(f"  {run.backend:12s} {100 * run.node_cpu_fraction_of_a_core:5.1f} % of a core at "
                             f"{run.control_steps_per_s:.2f} steps/s (inference {run.inference_ms_mean:.1f} ms x rate "
                             f"= {100 * run.inference_x_rate:.1f} %)")
        return lines


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _measure_backend(config: NodeCpuBenchConfig, checkpoint: str, backend: str, namespace: str) -> BackendCpu:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import String

    from rt1_ros.node import qos
    from rt1_ros.msg import RT1Action

    parameters = {"checkpoint": checkpoint, "start_enabled": "true", "control_rate_hz": config.control_rate_hz,
                  "inference_backend": backend, "inference_threads": 1}
    camera = None
    context = rclpy.Context()
    executor = probe = None
    with NodeProcess(namespace, parameters, log_prefix="rt1_node_cpu_") as node_process:
        try:
            camera = subprocess.Popen(
                [sys.executable, "-m", "rt1_ros.bench.camera_process", "--topic", f"{namespace}/image",
                 "--width", str(config.image_width), "--height", str(config.image_height),
                 "--fps", str(config.camera_fps),
                 "--seconds", str(config.timeout_s + config.settle_s + config.window_s)],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                preexec_fn=functools.partial(interrupt_when_parent_dies, os.getpid()))
            rclpy.init(context=context)
            probe = Node("node_cpu_probe", context=context)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(probe)
            actions: list[tuple[float, float]] = []  # (arrival, inference_ms) of the steps that answered with an action
            probe.create_subscription(
                RT1Action, f"{namespace}/rt1_action",
                lambda m: actions.append((time.monotonic(), float(m.inference_ms))) if m.mode != RT1Action.MODE_HOLD
                else None, 10)
            probe.create_publisher(String, f"{namespace}/instruction", qos.LATCHED).publish(String(data=INSTRUCTION))

            def spin_until(condition, deadline: float) -> None:
                while not condition() and time.monotonic() < deadline and node_process.poll() is None:
                    executor.spin_once(timeout_sec=0.1)

            def node_cpu_seconds() -> float:
                try:
                    return _cpu_seconds(node_process.pid)
                except OSError:  # it exited (and was reaped): say so below rather than fail on /proc
                    raise RuntimeError(f"rt1_node ({backend}) exited with {node_process.poll()}") from None

            spin_until(lambda: len(actions) >= 3, time.monotonic() + config.timeout_s)
            if len(actions) < 3:
                raise RuntimeError(f"rt1_node ({backend}) published {len(actions)} actions within "
                                   f"{config.timeout_s:g} s; its log ends: {node_process.log_tail()}")
            spin_until(lambda: False, time.monotonic() + config.settle_s)
            # The window opens and closes on an action's arrival (the first after window_s), so it always holds whole
            # control steps however slow a loaded machine makes them; timeout_s bounds a node that stops answering.
            count_before = len(actions)
            spin_until(lambda: len(actions) > count_before, time.monotonic() + config.timeout_s)
            cpu_before, clock, opened_at = node_cpu_seconds(), time.monotonic(), len(actions)
            spin_until(lambda: len(actions) > opened_at and actions[-1][0] - clock >= config.window_s,
                       clock + config.window_s + config.timeout_s)
            cpu_after, elapsed = node_cpu_seconds(), time.monotonic() - clock
            window = actions[opened_at:]
            if node_process.poll() is not None:
                raise RuntimeError(f"rt1_node ({backend}) exited with {node_process.poll()} during the window")
            if not window:
                raise RuntimeError(f"rt1_node ({backend}) stopped answering: no action within {config.timeout_s:g} s")
        finally:
            stop_processes([camera])
            if executor is not None:
                executor.shutdown()
            if probe is not None:
                probe.destroy_node()
            rclpy.try_shutdown(context=context)
    return BackendCpu(backend=backend, node_cpu_fraction_of_a_core=(cpu_after - cpu_before) / elapsed,
                      control_steps_per_s=len(window) / elapsed,
                      inference_ms_mean=sum(ms for _, ms in window) / max(1, len(window)), window_s=elapsed)


def bench_node_cpu(config: BenchConfig) -> NodeCpuResult | Skipped:
    try:
        import rclpy  # noqa: F401

        from rt1_ros.msg import RT1Action  # noqa: F401
    except ImportError as exc:
        return Skipped(f"ROS 2 not importable: {exc}", "node process CPU: skipped ({reason})", blank_line_before=True)
    from rt1_ros.runtime.policy_loading import shipped_model_path

    checkpoint = shipped_model_path()
    if checkpoint is None:
        return Skipped("the shipped model models/rt1_sim is missing", "node process CPU: skipped ({reason})",
                       blank_line_before=True)
    settings = config.node_cpu
    runs: list[BackendCpu | Skipped] = []
    for index, backend in enumerate(settings.backends):
        namespace = f"/rt1_bench_cpu_{os.getpid()}_{index}"
        try:
            runs.append(_measure_backend(settings, str(checkpoint), backend, namespace))
        except RuntimeError as exc:
            runs.append(Skipped(str(exc), "failed: {reason}"))
    return NodeCpuResult(settings, runs)
