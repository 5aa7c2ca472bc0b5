"""The closed-loop demo: the embedded simulator and the RT-1 node talking over real ROS 2 topics.

    sim_node ── camera/image_raw, instruction ──▶ rt1_node ── cmd_vel, arm_command, rt1_action ──▶ sim_node

Both nodes and a recorder run in one process and one executor (real rclpy, Fast DDS). The simulator runs in
lockstep: after each image it waits for the policy's action for that image, applies it and advances one control
period, so the episode runs as fast as inference allows, independent of the wall clock. The recorder keeps every
image and action and writes, to --output: episode.mp4 (camera with instruction and commands overlaid),
actions.png (commanded arm/base actions and mode over time) and summary.json / summary.md.

    make demo                                   # or: scripts/rt1-env python -m rt1_ros.demo --task-family pick
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from rt1_ros.episode_report import EpisodeLog, EpisodeStep, EpisodeSummary, summarise_latency, write_report
from rt1_ros.msg import EpisodeStatus, RT1Action
from rt1_ros.runtime.image_decoding import decode_raw
from rt1_ros.runtime.policy_loading import UNTRAINED_BANNER

# Used when --checkpoint is not given, first found wins: a checkpoint put there for the demo, then where the
# README's training recipe writes its best checkpoint.
DEFAULT_CHECKPOINTS = (Path("checkpoints/demo"), Path("checkpoints/tiny_sim/best"))
NANOSECONDS = 1_000_000_000


def stamp_ns(stamp) -> int:
    return stamp.sec * NANOSECONDS + stamp.nanosec


class EpisodeRecorder(Node):
    """Keeps each camera image by stamp and pairs it with the policy's action for that image."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("demo_recorder", **node_kwargs)
        self.frames: dict[int, np.ndarray] = {}
        self.actions: list[RT1Action] = []
        self.status: EpisodeStatus | None = None
        self._lock = threading.Lock()
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(Image, "camera/image_raw", self._on_image, reliable)
        self.create_subscription(RT1Action, "rt1_action", self._on_action, reliable)
        self.create_subscription(EpisodeStatus, "episode_status", self._on_status, latched)

    def _on_image(self, message: Image) -> None:
        rgb = decode_raw(message.height, message.width, message.encoding, bool(message.is_bigendian), message.step,
                         message.data, max_pixels=message.height * message.width)
        with self._lock:
            self.frames[stamp_ns(message.header.stamp)] = rgb.copy()

    def _on_action(self, message: RT1Action) -> None:
        with self._lock:
            self.actions.append(message)

    def _on_status(self, message: EpisodeStatus) -> None:
        self.status = message

    def episode_log(self, instruction: str) -> EpisodeLog:
        log = EpisodeLog(instruction=instruction)
        with self._lock:
            for action in self.actions:
                frame = self.frames.get(stamp_ns(action.header.stamp))
                if frame is None:
                    continue  # a hold published before the first image: nothing was seen
                log.steps.append(EpisodeStep(sim_time_s=stamp_ns(action.header.stamp) / NANOSECONDS, frame=frame,
                                             arm=np.asarray(action.arm, float), base=np.asarray(action.base, float),
                                             mode=int(action.mode), inference_ms=float(action.inference_ms)))
        return log


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task-family", default="move_near", help="pick | move_near | push (config/sim.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (object poses, target, start pose)")
    parser.add_argument("--checkpoint", default=None,
                        help="trained checkpoint directory (default: the first of "
                             f"{', '.join(map(str, DEFAULT_CHECKPOINTS))} that exists, else an untrained model; "
                             "'' forces the untrained model)")
    parser.add_argument("--model-size", default="paper", choices=("paper", "tiny"),
                        help="size of the untrained model used when there is no checkpoint")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--max-steps", type=int, default=0, help="step budget (0: the task family's)")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="wall-clock limit for the episode")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo"))
    return parser.parse_args(argv)


def run_demo(args: argparse.Namespace) -> EpisodeSummary:
    from rt1_ros.node.rt1_node import Rt1Node
    from rt1_ros.sim.sim_node import SimNode

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.checkpoint is None:
        checkpoint = next((c for c in DEFAULT_CHECKPOINTS if (c / "model.safetensors").is_file()), None)
    if checkpoint is None:
        print("=" * 100 + f"\n{UNTRAINED_BANNER}\n" + "=" * 100, flush=True)

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    nodes: list[Node] = []
    spinning = True

    def spin() -> None:
        while spinning and context.ok():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    try:
        policy_parameters = [
            Parameter("use_sim_time", value=True),
            Parameter("control_trigger", value="image"),  # one policy step per simulator image (lockstep)
            Parameter("start_enabled", value=True),
            Parameter("device", value=args.device),
            Parameter("model_size", value=args.model_size),
            Parameter("checkpoint", value=str(checkpoint or "")),
        ]
        # The policy loads first: a lockstep simulator started earlier would time out waiting for it.
        rt1 = Rt1Node(context=context, parameter_overrides=policy_parameters,
                      cli_args=["--ros-args", "-r", "image:=camera/image_raw"])
        recorder = EpisodeRecorder(context=context)
        nodes += [rt1, recorder]
        for node in nodes:
            executor.add_node(node)
        spinner.start()
        sim_parameters = [
            Parameter("lockstep", value=True),
            Parameter("task_family", value=args.task_family),
            Parameter("seed", value=args.seed),
            Parameter("max_episode_steps", value=args.max_steps),
        ]
        started = time.monotonic()
        sim = SimNode(context=context, parameter_overrides=sim_parameters)
        nodes.append(sim)
        executor.add_node(sim)
        instruction = sim.task.instruction
        print(f"episode: '{instruction}' ({args.task_family}, seed {args.seed})", flush=True)
        while time.monotonic() - started < args.timeout_s:
            status = recorder.status
            if status is not None and status.done and status.instruction == instruction:
                break
            time.sleep(0.05)
        wall = time.monotonic() - started
        status = recorder.status
        done = status is not None and status.done
        log = recorder.episode_log(instruction)
        median_ms, p90_ms = summarise_latency(log)
        sim_time = log.steps[-1].sim_time_s - log.steps[0].sim_time_s if len(log.steps) > 1 else 0.0
        terminated = any(s.mode == RT1Action.MODE_TERMINATE for s in log.steps)
        summary = EpisodeSummary(
            instruction=instruction, task_family=args.task_family, seed=args.seed, policy=rt1.policy_description,
            trained=checkpoint is not None, steps=len(log.steps), success=bool(done and status.success),
            sim_time_s=round(sim_time, 3), wall_time_s=round(wall, 2),
            control_rate_hz_wall=round(len(log.steps) / wall, 3) if wall > 0 else 0.0,
            real_time_factor=round(sim_time / wall, 3) if wall > 0 else 0.0,
            inference_ms_median=round(median_ms, 2), inference_ms_p90=round(p90_ms, 2),
            end_reason=("policy terminated" if terminated else "step budget used up") if done else "timeout")
        outputs = write_report(log, summary, args.output, fps=sim.sim_config.physics.control_rate_hz)
        for name, path in outputs.items():
            print(f"wrote {name}: {path}")
        return summary
    finally:
        spinning = False
        if spinner.is_alive():
            spinner.join(timeout=5)
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    summary = run_demo(parse_arguments(argv))
    print("\nsummary:")
    for key, value in vars(summary).items():
        print(f"  {key:22s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
