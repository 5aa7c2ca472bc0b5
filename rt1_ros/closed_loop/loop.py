"""The closed loop over real ROS 2 topics: rt1_node ⇄ sim_node in lockstep, plus an observer, in one process.

    sim_node ── camera/image_raw, instruction ──▶ rt1_node ── cmd_vel, arm_command, rt1_action ──▶ sim_node
        └── episode_status ──▶ observer ◀── rt1_action (and camera/image_raw when recording)

Used by `make demo` (recording frames for the video) and `rt1-eval` (counting successes). Each `ClosedLoop` has its
own DDS domain and namespace (`rt1_ros.node.ros_graph`), so concurrent runs on one machine never see each other's
episodes. The simulator runs in lockstep: after each image it waits for the policy's action for that image, applies
it and advances one control period, so an episode runs as fast as inference and rendering allow.

An episode is started with the sim's `reset_episode` service and is over when `episode_status` reports done for
*that* episode (family, seed and the instruction the reset returned all match); the policy's `~/reset` clears its
frame history and terminate state first.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from rt1_ros.closed_loop.episode_bag import episode_end_ns, episode_start_ns
from rt1_ros.node import qos
from rt1_ros.msg import EpisodeStatus, RT1Action
from rt1_ros.node.ros_graph import InProcessGraph, call_service, stamp_ns
from rt1_ros.inference.image_decoding import decode_raw
from rt1_ros.srv import ResetEpisode

SERVICE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ClosedLoopConfig:
    checkpoint: str  # checkpoint directory; "" = an untrained model of `model_size` (for plumbing checks only)
    model_size: str = "sim"  # only used without a checkpoint
    condition: str = "seen"  # the scene condition episodes are drawn from (config/sim.yaml conditions)
    device: str = "cpu"  # auto | cpu | cuda
    ema_alpha: float = 1.0  # the demonstrations are unsmoothed expert actions; smoothing would lag them
    max_episode_steps: int = 0  # 0 = the family's budget (config/sim.yaml)
    lockstep_timeout_s: float = 10.0  # the sim steps with a zero command if the policy has not answered by then
    episode_timeout_s: float = 600.0  # wall clock, per episode
    record_frames: bool = False  # keep every camera image (the demo's video); costs memory, not time
    domain_id: int | None = None  # DDS domain of the graph; None = a private random one (`rt1_ros.node.ros_graph`)
    record_bag: bool = False  # record each episode's topics for a rosbag2/MCAP file (`rt1_ros.closed_loop.episode_bag`)
    num_threads: int = 0  # the policy node's inference threads (0 = its default, all cores)


@dataclass
class ObservedAction:
    stamp_ns: int  # stamp of the image the action answers
    mode: int
    arm: np.ndarray  # (7,)
    base: np.ndarray  # (3,)
    inference_ms: float
    instruction: str = ""  # the instruction the policy computed it under

    def answers(self, instruction: str, since_ns: int, until_ns: int) -> bool:
        """An answer to an image of the episode that ran from ``since_ns`` to ``until_ns`` (exclusive: the final
        image, published with the status that ended the episode, is never stepped for) with ``instruction`` (not
        one computed under the previous instruction, which the sim does not count either)."""
        return since_ns <= self.stamp_ns < until_ns and self.instruction in ("", instruction)


@dataclass
class ClosedLoopEpisode:
    family: str
    seed: int
    instruction: str
    success: bool
    steps: int  # control steps the simulator ran (its episode_status)
    terminated: bool  # the policy chose terminate (else the step budget ran out)
    wall_s: float
    actions: list[ObservedAction] = field(default_factory=list)
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # image stamp (ns) -> (H,W,3) RGB, when recording
    bag_messages: list = field(default_factory=list)  # RecordedMessage, with record_bag: `write_episode_bag`

    @property
    def inference_ms(self) -> list[float]:
        return [a.inference_ms for a in self.actions if a.inference_ms > 0.0]


class ClosedLoop:
    """Builds the graph once; `run_episode` may be called many times; `close()` (or ``with``) tears it down."""

    def __init__(self, config: ClosedLoopConfig, first_family: str, idle_seed: int) -> None:
        """``idle_seed``: the sim node lays out an episode of its own when it starts; give it a seed that no
        `run_episode` call uses, so its status can never be taken for a requested episode's."""
        # Imported here: each pulls in torch or MuJoCo, which a caller that only reads these dataclasses skips.
        from rt1_ros.node.rt1_node import Rt1Node
        from rt1_ros.node.sim_node import SimNode

        self.config = config
        self.graph = InProcessGraph(config.domain_id)
        namespace = f"/rt1_loop_{uuid.uuid4().hex[:8]}"
        context = self.graph.context
        try:
            policy_parameters = dict(
                checkpoint=str(Path(config.checkpoint).resolve()) if config.checkpoint else "",
                model_size=config.model_size, device=config.device, control_trigger="image", start_enabled=True,
                ema_alpha=config.ema_alpha, image_reliability="reliable", image_timeout_s=60.0, use_sim_time=True,
                num_threads=config.num_threads)
            # The policy node first: it loads the model, and the sim starts stepping as soon as it exists.
            self.policy_node = self.graph.add(Rt1Node(
                namespace=namespace, context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in policy_parameters.items()],
                cli_args=["--ros-args", "-r", "image:=camera/image_raw"]))
            self.observer = self.graph.add(_Observer(namespace, context, config.record_frames))
            self.bag_recorder = None
            if config.record_bag:
                from rt1_ros.closed_loop.episode_bag import EpisodeBagRecorder

                self.bag_recorder = self.graph.add(EpisodeBagRecorder(namespace, context))
            sim_parameters = dict(lockstep=True, lockstep_timeout_s=config.lockstep_timeout_s,
                                  condition=config.condition, task_family=first_family, seed=idle_seed,
                                  image_reliability="reliable",
                                  publish_instruction=True, max_episode_steps=config.max_episode_steps)
            self.sim_node = self.graph.add(SimNode(
                namespace=namespace, context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in sim_parameters.items()]))
            self._reset_sim = self.observer.create_client(ResetEpisode, "reset_episode")
            self._reset_policy = self.observer.create_client(Trigger, "rt1_node/reset")
            for client in (self._reset_sim, self._reset_policy):
                if not client.wait_for_service(timeout_sec=SERVICE_TIMEOUT_S):
                    raise RuntimeError(f"service {client.srv_name} did not appear")
        except BaseException:
            self.graph.close()
            raise

    @property
    def policy_description(self) -> str:
        return self.policy_node.policy_description

    @property
    def control_rate_hz(self) -> float:
        return self.sim_node.sim_config.physics.control_rate_hz

    @property
    def lockstep_timeouts(self) -> int:
        return self.sim_node.lockstep_timeouts

    def _call(self, client, request):
        response = call_service(client, request, SERVICE_TIMEOUT_S)
        if response is None:
            raise RuntimeError(f"service {client.srv_name} did not answer within {SERVICE_TIMEOUT_S:.0f} s")
        return response

    def run_episode(self, family: str, seed: int) -> ClosedLoopEpisode:
        started = time.monotonic()
        self._call(self._reset_policy, Trigger.Request())
        self.observer.clear()
        if self.bag_recorder is not None:
            self.bag_recorder.start()
        response = self._call(self._reset_sim, ResetEpisode.Request(task_family=family, seed=seed))
        if not response.success:
            raise RuntimeError(f"reset_episode({family}, {seed}) failed: {response.message}")

        def finished(status) -> bool:
            # The latched status of the previous episode may still arrive: only this episode's counts.
            return (status is not None and status.done and status.task_family == family and status.seed == seed
                    and status.instruction == response.instruction)

        status = self.observer.wait_for_status(finished, started + self.config.episode_timeout_s)
        if status is None:
            raise RuntimeError(f"episode {family}/{seed} did not finish within {self.config.episode_timeout_s} s")
        # The sim published this status after it had received the policy's answer to each of its `step` images;
        # the observer's own copies of those answers travel on another topic from another publisher and may still
        # be on their way. (Fewer arrive only after lockstep timeouts, which the sim has already waited out.)
        # Answers and images stamped before the episode began are the episode before's, still arriving.
        start_ns, end_ns = episode_start_ns(status), episode_end_ns(status)

        def answers(action: ObservedAction) -> bool:
            return action.answers(response.instruction, start_ns, end_ns)

        self.observer.wait_for_answers(int(status.step), time.monotonic() + self.config.lockstep_timeout_s, answers)
        actions, frames = self.observer.take()
        actions = [a for a in actions if answers(a)]
        frames = {stamp: frame for stamp, frame in frames.items() if start_ns <= stamp <= end_ns}
        bag_messages = (self.bag_recorder.stop(finished, [a.stamp_ns for a in actions])
                        if self.bag_recorder is not None else [])
        return ClosedLoopEpisode(
            family=family, seed=seed, instruction=response.instruction, success=bool(status.success),
            steps=int(status.step), terminated=any(a.mode == RT1Action.MODE_TERMINATE for a in actions),
            wall_s=time.monotonic() - started, actions=actions, frames=frames, bag_messages=bag_messages)

    def close(self) -> None:
        self.graph.close()

    def __enter__(self) -> "ClosedLoop":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Observer(Node):
    """Collects the episode status, the policy's actions and (optionally) the camera images."""

    def __init__(self, namespace: str, context, record_frames: bool) -> None:
        super().__init__("rt1_loop_observer", namespace=namespace, context=context)
        self._condition = threading.Condition()
        self._status = None
        self._actions: list[ObservedAction] = []
        self._frames: dict[int, np.ndarray] = {}
        self.create_subscription(EpisodeStatus, "episode_status", self._on_status, qos.LATCHED)
        self.create_subscription(RT1Action, "rt1_action", self._on_action, qos.RECORDING)
        if record_frames:
            self.create_subscription(Image, "camera/image_raw", self._on_image, qos.RECORDING)

    def _on_status(self, message) -> None:
        with self._condition:
            self._status = message
            self._condition.notify_all()

    def _on_action(self, message) -> None:
        action = ObservedAction(stamp_ns=stamp_ns(message.header.stamp), mode=int(message.mode),
                                arm=np.asarray(message.arm, float), base=np.asarray(message.base, float),
                                inference_ms=float(message.inference_ms), instruction=message.instruction)
        with self._condition:
            self._actions.append(action)
            self._condition.notify_all()

    def _on_image(self, message) -> None:
        rgb = decode_raw(message.height, message.width, message.encoding, bool(message.is_bigendian), message.step,
                         message.data, max_pixels=message.height * message.width)
        with self._condition:
            self._frames[stamp_ns(message.header.stamp)] = rgb.copy()

    def clear(self) -> None:
        with self._condition:
            self._status = None
            self._actions = []
            self._frames = {}

    def wait_for_status(self, predicate, deadline: float):
        with self._condition:
            while not predicate(self._status):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(min(remaining, 1.0))
            return self._status

    def wait_for_answers(self, count: int, deadline: float, counts) -> None:
        """Until answers to ``count`` distinct images, among the actions ``counts`` accepts, have arrived (a hold
        answers its image too), or ``deadline``."""
        with self._condition:
            while len({a.stamp_ns for a in self._actions if counts(a)}) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._condition.wait(remaining)

    def take(self) -> tuple[list[ObservedAction], dict[int, np.ndarray]]:
        with self._condition:
            return list(self._actions), dict(self._frames)
