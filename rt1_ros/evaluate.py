"""rt1-eval: closed-loop success rate of a checkpoint in the simulator, through the real ROS 2 nodes.

    rt1-eval --checkpoint checkpoints/tiny_sim/best --families pick move_near --episodes-per-family 20

Headline mode (default, "ros"): the real `Rt1Node` and the real `SimNode` run in this process, in one executor, and
talk only over ROS 2 topics (Fast DDS): the sim publishes `camera/image_raw` and the episode's instruction, the
policy node (remapped `image` -> `camera/image_raw`, `control_trigger: image`) answers each image with `rt1_action`,
`cmd_vel` and `arm_command`, and the sim in lockstep mode applies them and advances exactly one control period. So
the evaluation runs as fast as inference allows and measures the deployed code path: image decoding, frame-token
cache, controller mode rules, gripper hysteresis, clamps, message conversion. Episodes are started with the sim's
`reset_episode` service and scored from `episode_status` (done + success, latched by the sim); the policy node's
`~/reset` clears its history and terminate state between episodes.

`--direct` is a ROS-free shortcut for quick checks: `Policy.step` on `sim.render()` via
`rt1_ros.sim.episode.run_episode` (raw decoded actions: no EMA, no gripper hysteresis, no node clamps). It is
labelled as such in every output; the ROS mode is the one to report.

Seeds: episode i of a family uses seed ``seed_start + i``; the default start (100000) is far from the generator's
seeds (0, 1, ...), so evaluation layouts are not training layouts. Outputs: ``<output>/results.json`` (per episode
and summary) and ``<output>/results.md`` (the success table), also printed.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_SEED_START = 100_000


@dataclass
class EpisodeOutcome:
    family: str
    seed: int
    instruction: str
    success: bool
    steps: int
    terminated: bool  # the policy chose terminate (else the step budget ran out)
    wall_s: float
    inference_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class EvalSettings:
    checkpoint: str
    families: tuple[str, ...] = ("pick", "move_near")
    episodes_per_family: int = 10
    seed_start: int = DEFAULT_SEED_START
    device: str = "cpu"
    ema_alpha: float = 1.0  # the demonstrations are unsmoothed expert actions; smoothing would lag them
    max_episode_steps: int = 0  # 0 = the family's budget (config/sim.yaml)
    lockstep_timeout_s: float = 5.0
    episode_timeout_s: float = 600.0


# ---------------------------------------------------------------------------------------------------- over ROS 2
class RosEvaluation:
    """Both real nodes plus a small evaluator node in one executor; a private namespace keeps topics apart."""

    def __init__(self, settings: EvalSettings, first_family: str, first_seed: int) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from rt1_ros.msg import EpisodeStatus, RT1Action
        from rt1_ros.node.rt1_node import Rt1Node
        from rt1_ros.sim.sim_node import SimNode
        from rt1_ros.srv import ResetEpisode
        from std_srvs.srv import Trigger

        self.settings = settings
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        namespace = f"/rt1_eval_{uuid.uuid4().hex[:8]}"
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        policy_parameters = dict(checkpoint=str(Path(settings.checkpoint).resolve()), device=settings.device,
                                 control_trigger="image", start_enabled=True, ema_alpha=settings.ema_alpha,
                                 image_reliability="reliable", image_timeout_s=60.0)
        # The policy node first: it loads the model, and the sim starts stepping as soon as it exists.
        self.policy_node = Rt1Node(namespace=namespace, context=self.context,
                                   parameter_overrides=[Parameter(k, value=v) for k, v in policy_parameters.items()],
                                   cli_args=["--ros-args", "-r", "image:=camera/image_raw"])
        sim_parameters = dict(lockstep=True, lockstep_timeout_s=settings.lockstep_timeout_s, task_family=first_family,
                              seed=first_seed, image_reliability="reliable", publish_instruction=True,
                              max_episode_steps=settings.max_episode_steps)
        self.sim_node = SimNode(namespace=namespace, context=self.context,
                                parameter_overrides=[Parameter(k, value=v) for k, v in sim_parameters.items()])
        self.evaluator = rclpy.create_node("rt1_evaluator", namespace=namespace, context=self.context)
        self._lock = threading.Condition()
        self._status = None
        self._actions: list = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.evaluator.create_subscription(EpisodeStatus, "episode_status", self._on_status, latched)
        self.evaluator.create_subscription(RT1Action, "rt1_action", self._on_action, 50)
        self.reset_sim = self.evaluator.create_client(ResetEpisode, "reset_episode")
        self.reset_policy = self.evaluator.create_client(Trigger, "rt1_node/reset")
        self._reset_request_type = ResetEpisode.Request
        self._trigger_request_type = Trigger.Request
        self._terminate_mode = RT1Action.MODE_TERMINATE
        for node in (self.policy_node, self.sim_node, self.evaluator):
            self.executor.add_node(node)
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        for client in (self.reset_sim, self.reset_policy):
            if not client.wait_for_service(timeout_sec=30.0):
                raise RuntimeError(f"service {client.srv_name} did not appear")

    def _spin(self) -> None:
        while self._spinning and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_status(self, message) -> None:
        with self._lock:
            self._status = message
            self._lock.notify_all()

    def _on_action(self, message) -> None:
        with self._lock:
            self._actions.append((message.mode, float(message.inference_ms)))

    def _call(self, client, request, timeout: float = 30.0):
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not future.done():
            raise RuntimeError(f"service {client.srv_name} did not answer within {timeout:.0f} s")
        return future.result()

    def run_episode(self, family: str, seed: int) -> EpisodeOutcome:
        started = time.monotonic()
        self._call(self.reset_policy, self._trigger_request_type())
        with self._lock:
            self._status = None
            self._actions = []
        response = self._call(self.reset_sim, self._reset_request_type(task_family=family, seed=seed))
        if not response.success:
            raise RuntimeError(f"reset_episode({family}, {seed}) failed: {response.message}")
        deadline = started + self.settings.episode_timeout_s
        with self._lock:
            while time.monotonic() < deadline:
                status = self._status
                # The latched status of the previous episode may still arrive: only this episode's counts.
                if (status is not None and status.done and status.task_family == family and status.seed == seed
                        and status.instruction == response.instruction):
                    break
                self._lock.wait(0.1)
            else:
                raise RuntimeError(f"episode {family}/{seed} did not finish within {self.settings.episode_timeout_s} s")
            actions = list(self._actions)
        inference = [ms for mode, ms in actions if mode <= self._terminate_mode and ms > 0.0]
        terminated = any(mode == self._terminate_mode for mode, _ in actions)
        return EpisodeOutcome(family=family, seed=seed, instruction=response.instruction, success=bool(status.success),
                              steps=int(status.step), terminated=terminated, wall_s=time.monotonic() - started,
                              inference_ms=inference)

    def close(self) -> None:
        import rclpy

        self._spinning = False
        self._thread.join(timeout=5.0)
        for node in (self.sim_node, self.policy_node, self.evaluator):
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)


# ------------------------------------------------------------------------------------------------ direct (no ROS)
class DirectEvaluation:
    """ROS-free: Policy.step on the simulator's render; raw decoded actions, applied like the node's mode rules."""

    def __init__(self, settings: EvalSettings) -> None:
        from rt1_ros.runtime.policy_loading import PolicySource, load_policy
        from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

        self.settings = settings
        loaded = load_policy(PolicySource(checkpoint=settings.checkpoint, device=settings.device))
        self.policy = loaded.policy
        self.action_space = loaded.action_space
        self.sim = MobileManipulatorSim()

    def run_episode(self, family: str, seed: int) -> EpisodeOutcome:
        from rt1_ros.sim.episode import run_episode

        started = time.monotonic()
        task = self.sim.reset(family, seed)
        self.policy.set_instruction(task.instruction)
        inference: list[float] = []

        def act() -> np.ndarray:
            step = self.policy.step(self.sim.render())
            inference.append(step.inference_ms)
            return step.action

        result = run_episode(self.sim, task, act, self.action_space, max_steps=self.settings.max_episode_steps or None)
        return EpisodeOutcome(family=family, seed=seed, instruction=task.instruction, success=result.success,
                              steps=result.steps, terminated=result.terminated, wall_s=time.monotonic() - started,
                              inference_ms=inference)

    def close(self) -> None:
        self.sim.close()


# ---------------------------------------------------------------------------------------------------- reporting
def summarise(outcomes: list[EpisodeOutcome], families: tuple[str, ...]) -> dict:
    summary = {}
    for family in list(families) + ["all"]:
        mine = [o for o in outcomes if family == "all" or o.family == family]
        if not mine:
            continue
        latencies = [ms for o in mine for ms in o.inference_ms]
        summary[family] = {
            "episodes": len(mine),
            "successes": sum(o.success for o in mine),
            "success_rate": sum(o.success for o in mine) / len(mine),
            "mean_episode_steps": float(np.mean([o.steps for o in mine])),
            "terminated_by_policy": sum(o.terminated for o in mine),
            "inference_ms_mean": float(np.mean(latencies)) if latencies else None,
            "inference_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
            "wall_s_per_episode": float(np.mean([o.wall_s for o in mine])),
        }
    return summary


def markdown_table(summary: dict, mode_label: str, checkpoint: str) -> str:
    lines = [f"Evaluation of `{checkpoint}` — {mode_label}", "",
             "| family | success | rate | mean steps | policy terminated | inference ms mean / p95 | wall s / ep |",
             "|---|---|---|---|---|---|---|"]
    for family, row in summary.items():
        latency = (f"{row['inference_ms_mean']:.1f} / {row['inference_ms_p95']:.1f}"
                   if row["inference_ms_mean"] is not None else "-")
        lines.append(f"| {family} | {row['successes']}/{row['episodes']} | {row['success_rate']:.0%} | "
                     f"{row['mean_episode_steps']:.1f} | {row['terminated_by_policy']} | {latency} | "
                     f"{row['wall_s_per_episode']:.1f} |")
    return "\n".join(lines) + "\n"


def evaluate(settings: EvalSettings, direct: bool = False, output: str | Path | None = None,
             progress: bool = True) -> dict:
    from tqdm import tqdm

    jobs = [(family, settings.seed_start + i) for family in settings.families
            for i in range(settings.episodes_per_family)]
    if not jobs:
        raise ValueError("nothing to evaluate: no families or zero episodes")
    mode_label = ("DIRECT (ROS-free Policy + simulator; not the deployed node path)" if direct
                  else "ROS 2 (rt1_node + sim_node over topics, lockstep)")
    # The sim node starts an episode of its own at construction: give it a seed no job uses, so its status can never
    # be mistaken for a job's.
    spare_seed = max(seed for _, seed in jobs) + 1
    runner = DirectEvaluation(settings) if direct else RosEvaluation(settings, jobs[0][0], spare_seed)
    outcomes: list[EpisodeOutcome] = []
    bar = tqdm(jobs, desc="eval", unit="ep", disable=not progress)
    try:
        for family, seed in bar:
            outcomes.append(runner.run_episode(family, seed))
            bar.set_postfix(success=f"{np.mean([o.success for o in outcomes]):.0%}")
    finally:
        bar.close()
        lockstep_timeouts = getattr(getattr(runner, "sim_node", None), "lockstep_timeouts", 0)
        runner.close()
    summary = summarise(outcomes, settings.families)
    if not direct:
        # A timeout means an image went unanswered (e.g. it arrived before the instruction): the sim stepped with a
        # zero command. Reported so a slow or racy run is visible next to its numbers.
        summary["all"]["lockstep_timeouts"] = lockstep_timeouts
    table = markdown_table(summary, mode_label, settings.checkpoint)
    report = {"mode": "direct" if direct else "ros", "mode_label": mode_label, "settings": asdict(settings),
              "summary": summary, "episodes": [asdict(o) for o in outcomes], "table_markdown": table}
    if output is not None:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        (output / "results.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        (output / "results.md").write_text(table, encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. <run>/best)")
    parser.add_argument("--families", nargs="+", default=["pick", "move_near"])
    parser.add_argument("--episodes-per-family", type=int, default=10)
    parser.add_argument("--seed-start", type=int, default=DEFAULT_SEED_START)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--ema-alpha", type=float, default=1.0, help="rt1_node ema_alpha (1 = no smoothing)")
    parser.add_argument("--max-episode-steps", type=int, default=0, help="0 = the family's budget")
    parser.add_argument("--output", default=None, help="directory for results.json / results.md "
                                                       "(default outputs/eval/<checkpoint dir name>[_direct])")
    parser.add_argument("--direct", action="store_true", help="ROS-free quick check (not the headline number)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    settings = EvalSettings(checkpoint=args.checkpoint, families=tuple(args.families),
                            episodes_per_family=args.episodes_per_family, seed_start=args.seed_start,
                            device=args.device, ema_alpha=args.ema_alpha, max_episode_steps=args.max_episode_steps)
    checkpoint = Path(args.checkpoint).resolve()
    output = args.output or f"outputs/eval/{checkpoint.parent.name}_{checkpoint.name}{'_direct' if args.direct else ''}"
    report = evaluate(settings, direct=args.direct, output=output, progress=not args.no_progress)
    print(report["table_markdown"])
    print(f"saved {output}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
