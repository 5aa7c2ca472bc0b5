"""rt1-eval: closed-loop success rate of a checkpoint in the simulator, through the real ROS 2 nodes.

    rt1-eval                                                     # the shipped models/rt1_sim, every family
    rt1-eval --checkpoint outputs/model/rt1_sim/best --episodes-per-family 50 --held-out-episodes-per-family 20

Headline mode (default, "ros"): the real `Rt1Node` and the real `SimNode` run in this process
(`rt1_ros.closed_loop`: a private DDS domain, one executor thread per node), and talk only over ROS 2 topics
(Fast DDS): the sim publishes `camera/image_raw` and the episode's instruction, the
policy node (remapped `image` -> `camera/image_raw`, `control_trigger: image`) answers each image with `rt1_action`,
`cmd_vel` and `arm_command`, and the sim in lockstep mode applies them and advances exactly one control period. So
the evaluation runs as fast as inference allows and measures the deployed code path: image decoding, frame-token
cache, controller mode rules, gripper hysteresis, clamps, message conversion. Episodes are started with the sim's
`reset_episode` service and scored from `episode_status` (done + success, latched by the sim); the policy node's
`~/reset` clears its history and terminate state between episodes.

`--direct` is a ROS-free shortcut for quick checks: `RT1Policy.select_action` on `sim.render()` via
`rt1_ros.sim.episode.run_episode` (raw decoded actions: no EMA, no gripper hysteresis, no node clamps). It is
labelled as such in every output; the ROS mode is the one to report.

Seeds: per family, the first seeds from ``seed_start`` (100000, far from the generator's 0, 1, ...) whose task is a
seen instruction, and, with ``--held-out-episodes-per-family``, the first whose (family, target) the checkpoint's
training data held out (rt1-generate --hold-out; recorded in the checkpoint); the two are reported in separate rows
with 95 % Wilson intervals. Evaluation layouts are never training layouts. Outputs: ``<output>/results.json``
(per episode and summary) and ``<output>/results.md`` (the success table), also printed; with ``--record`` (ROS mode)
each episode's topics as a rosbag2/MCAP folder ``<output>/episodes/<family>_<seed>`` (open it in Foxglove).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from rt1_ros.yaml_config import add_override_argument, apply_overrides

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
    target: str = ""  # colour_shape of the task's target object
    held_out: bool = False  # (family, target) was held out of the checkpoint's training data
    failure: str = ""  # direct mode: why it failed, from the simulator's state (rt1_ros.sim.failure_analysis)


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str
    families: tuple[str, ...] = ("pick", "push", "move_near")
    episodes_per_family: int = 10  # seeds whose instruction was in the training data (seen instructions)
    held_out_episodes_per_family: int = 0  # seeds whose (family, target) the training data held out
    seed_start: int = DEFAULT_SEED_START
    device: str = "cpu"
    ema_alpha: float = 1.0  # the demonstrations are unsmoothed expert actions; smoothing would lag them
    max_episode_steps: int = 0  # 0 = the family's budget (config/sim.yaml)
    lockstep_timeout_s: float = 5.0
    episode_timeout_s: float = 600.0
    record_dir: str = ""  # non-empty (--record): each ROS episode also as rosbag2/MCAP, <record_dir>/<family>_<seed>


# ---------------------------------------------------------------------------------------------------- over ROS 2
class RosEvaluation:
    """Episodes through the real nodes over topics (`rt1_ros.closed_loop`)."""

    def __init__(self, settings: EvalConfig, first_family: str, idle_seed: int) -> None:
        from rt1_ros.closed_loop import ClosedLoop, ClosedLoopConfig

        self.loop = ClosedLoop(ClosedLoopConfig(checkpoint=settings.checkpoint, device=settings.device,
                                                ema_alpha=settings.ema_alpha,
                                                max_episode_steps=settings.max_episode_steps,
                                                lockstep_timeout_s=settings.lockstep_timeout_s,
                                                episode_timeout_s=settings.episode_timeout_s,
                                                record_bag=bool(settings.record_dir)),
                               first_family, idle_seed)
        self.record_dir = Path(settings.record_dir) if settings.record_dir else None

    @property
    def lockstep_timeouts(self) -> int:
        return self.loop.lockstep_timeouts

    def run_episode(self, family: str, seed: int) -> EpisodeOutcome:
        episode = self.loop.run_episode(family, seed)
        if self.record_dir is not None:
            from rt1_ros.episode_bag import write_episode_bag

            write_episode_bag(self.record_dir / f"{family}_{seed}", episode.bag_messages)
        return EpisodeOutcome(family=family, seed=seed, instruction=episode.instruction, success=episode.success,
                              steps=episode.steps, terminated=episode.terminated, wall_s=episode.wall_s,
                              inference_ms=episode.inference_ms)

    def close(self) -> None:
        self.loop.close()


# ------------------------------------------------------------------------------------------------ direct (no ROS)
class DirectEvaluation:
    """ROS-free: RT1Policy.select_action on the simulator's render; raw decoded actions, applied like the node's
    mode rules."""

    def __init__(self, settings: EvalConfig) -> None:
        from rt1_ros.runtime.policy_loading import PolicySource, load_policy
        from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

        self.settings = settings
        loaded = load_policy(PolicySource(checkpoint=settings.checkpoint, device=settings.device))
        self.policy = loaded.policy
        self.action_space = loaded.action_space
        self.sim = MobileManipulatorSim()

    def run_episode(self, family: str, seed: int) -> EpisodeOutcome:
        from rt1_ros.sim.episode import run_episode
        from rt1_ros.sim.failure_analysis import FailureTracer

        started = time.monotonic()
        task = self.sim.reset(family, seed)
        self.policy.reset()
        self.policy.set_instruction(task.instruction)
        inference: list[float] = []
        tracer = FailureTracer(self.sim, task)

        def act() -> np.ndarray:
            tracer.after_step()  # the state the previous action left
            step = self.policy.select_action(self.sim.render())
            inference.append(step.inference_ms)
            return step.action

        result = run_episode(self.sim, task, act, self.action_space, max_steps=self.settings.max_episode_steps or None)
        tracer.after_step()
        return EpisodeOutcome(family=family, seed=seed, instruction=task.instruction, success=result.success,
                              steps=result.steps, terminated=result.terminated, wall_s=time.monotonic() - started,
                              inference_ms=inference, failure=tracer.classify(result.success))

    def close(self) -> None:
        self.sim.close()


# ---------------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class EpisodeJob:
    family: str
    seed: int
    target: str
    held_out: bool


def held_out_pairs(checkpoint: str) -> set[tuple[str, str]]:
    """(family, colour_shape) pairs the checkpoint's training data held out (recorded by rt1-train)."""
    from rt1_ros.model.checkpoint import read_checkpoint_config

    if not checkpoint:
        return set()
    _, _, extra = read_checkpoint_config(checkpoint)
    pairs = (extra.get("dataset") or {}).get("held_out_targets") or []
    return {tuple(entry.split(":", 1)) for entry in pairs}


def plan_jobs(settings: EvalConfig, held_out: set[tuple[str, str]]) -> list[EpisodeJob]:
    """Per family, the first seeds from ``seed_start`` on: ``episodes_per_family`` whose instruction was seen in
    training and ``held_out_episodes_per_family`` whose (family, target) was held out. The task a seed gives is read
    from a local simulator reset (a layout only: no rendering, no stepping)."""
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    if settings.held_out_episodes_per_family and not held_out:
        raise ValueError(f"{settings.checkpoint} records no held-out targets: nothing to evaluate as unseen")
    sim = MobileManipulatorSim()
    jobs: list[EpisodeJob] = []
    try:
        for family in settings.families:
            wanted = {False: settings.episodes_per_family,
                      True: settings.held_out_episodes_per_family if any(f == family for f, _ in held_out) else 0}
            seed = settings.seed_start
            while wanted[False] + wanted[True] > 0:
                task = sim.reset(family, seed)
                target = f"{task.target.colour}_{task.target.shape}"
                unseen = (family, target) in held_out
                if wanted[unseen] > 0:
                    jobs.append(EpisodeJob(family, seed, target, unseen))
                    wanted[unseen] -= 1
                seed += 1
    finally:
        sim.close()
    return jobs


# ---------------------------------------------------------------------------------------------------- reporting
def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate; honest at 0 and at n, unlike the normal approximation."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(outcomes: list[EpisodeOutcome], families: tuple[str, ...]) -> dict:
    """Rows per family (seen instructions), per family on held-out instructions ('<family> (held out)'), and
    'all' (seen instructions, every family)."""
    summary = {}
    groups = [(family, lambda o, f=family: o.family == f and not o.held_out) for family in families]
    groups += [(f"{family} (held out)", lambda o, f=family: o.family == f and o.held_out) for family in families]
    groups += [("all", lambda o: not o.held_out), ("all (held out)", lambda o: o.held_out)]
    for name, member in groups:
        mine = [o for o in outcomes if member(o)]
        if not mine:
            continue
        latencies = [ms for o in mine for ms in o.inference_ms]
        successes = sum(o.success for o in mine)
        low, high = wilson_interval(successes, len(mine))
        summary[name] = {
            "episodes": len(mine),
            "successes": successes,
            "success_rate": successes / len(mine),
            "wilson95": [round(low, 4), round(high, 4)],
            "mean_episode_steps": float(np.mean([o.steps for o in mine])),
            "terminated_by_policy": sum(o.terminated for o in mine),
            "inference_ms_mean": float(np.mean(latencies)) if latencies else None,
            "inference_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
            "wall_s_per_episode": float(np.mean([o.wall_s for o in mine])),
            "targets": sorted({o.target for o in mine}) if "held out" in name else None,
            "failures": dict(Counter(o.failure for o in mine if o.failure and not o.success)) or None,
        }
    return summary


def markdown_table(summary: dict, mode_label: str, checkpoint: str) -> str:
    lines = [f"Evaluation of `{checkpoint}` — {mode_label}", "",
             "| family | success | rate (Wilson 95 %) | mean steps | policy terminated | inference ms mean / p95 "
             "| wall s / ep |",
             "|---|---|---|---|---|---|---|"]
    for family, row in summary.items():
        latency = (f"{row['inference_ms_mean']:.1f} / {row['inference_ms_p95']:.1f}"
                   if row["inference_ms_mean"] is not None else "-")
        low, high = row["wilson95"]
        lines.append(f"| {family} | {row['successes']}/{row['episodes']} | {row['success_rate']:.0%} "
                     f"({low:.0%}–{high:.0%}) | {row['mean_episode_steps']:.1f} | {row['terminated_by_policy']} | "
                     f"{latency} | {row['wall_s_per_episode']:.1f} |")
    return "\n".join(lines) + "\n"


def evaluate(settings: EvalConfig, direct: bool = False, output: str | Path | None = None,
             progress: bool = True) -> dict:
    from tqdm import tqdm

    held_out = held_out_pairs(settings.checkpoint)
    jobs = plan_jobs(settings, held_out)
    if not jobs:
        raise ValueError("nothing to evaluate: no families or zero episodes")
    mode_label = ("DIRECT (ROS-free Policy + simulator; not the deployed node path)" if direct
                  else "ROS 2 (rt1_node + sim_node over topics, lockstep)")
    # The sim node starts an episode of its own at construction: give it a seed no job uses, so its status can never
    # be mistaken for a job's.
    idle_seed = max(job.seed for job in jobs) + 1
    runner = DirectEvaluation(settings) if direct else RosEvaluation(settings, jobs[0].family, idle_seed)
    outcomes: list[EpisodeOutcome] = []
    bar = tqdm(jobs, desc="eval", unit="ep", disable=not progress)
    try:
        for job in bar:
            outcome = runner.run_episode(job.family, job.seed)
            outcome.target, outcome.held_out = job.target, job.held_out
            outcomes.append(outcome)
            bar.set_postfix(success=f"{np.mean([o.success for o in outcomes]):.0%}")
    finally:
        bar.close()
        lockstep_timeouts = getattr(runner, "lockstep_timeouts", 0)
        runner.close()
    summary = summarise(outcomes, settings.families)
    if not direct:
        # A timeout means an image went unanswered (e.g. it arrived before the instruction): the sim stepped with a
        # zero command. Reported so a slow or racy run is visible next to its numbers.
        summary.setdefault("all", summary.get("all (held out)", {}))["lockstep_timeouts"] = lockstep_timeouts
    table = markdown_table(summary, mode_label, settings.checkpoint)
    failures = {name: row["failures"] for name, row in summary.items() if row.get("failures")}
    if failures:
        table += "\nFailures (from the simulator's state):\n" + "".join(
            f"- {name}: " + ", ".join(f"{kind} ×{count}" for kind, count in sorted(kinds.items())) + "\n"
            for name, kinds in failures.items() if not name.startswith("all"))
    report = {"mode": "direct" if direct else "ros", "mode_label": mode_label, "settings": asdict(settings),
              "held_out_targets": sorted(f"{f}:{t}" for f, t in held_out),
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
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint directory (e.g. <run>/best); default: the shipped models/rt1_sim")
    parser.add_argument("--families", nargs="+", default=list(EvalConfig.families))
    parser.add_argument("--episodes-per-family", type=int, default=10,
                        help="episodes on seeds whose instruction the training data contained")
    parser.add_argument("--held-out-episodes-per-family", type=int, default=0,
                        help="episodes on seeds whose (family, target) the training data held out")
    parser.add_argument("--seed-start", type=int, default=DEFAULT_SEED_START)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--ema-alpha", type=float, default=1.0, help="rt1_node ema_alpha (1 = no smoothing)")
    parser.add_argument("--max-episode-steps", type=int, default=0, help="0 = the family's budget")
    parser.add_argument("--output", default=None, help="directory for results.json / results.md "
                                                       "(default outputs/eval/<checkpoint dir name>[_direct])")
    parser.add_argument("--direct", action="store_true", help="ROS-free quick check (not the headline number)")
    parser.add_argument("--record", action="store_true",
                        help="also write each episode as rosbag2/MCAP (Foxglove, ros2 bag play) in <output>/episodes/")
    parser.add_argument("--no-progress", action="store_true")
    add_override_argument(parser, "override any EvalConfig field, after the flags above (e.g. lockstep_timeout_s=10)")
    args = parser.parse_args(argv)
    if args.checkpoint is None:
        from rt1_ros.runtime.policy_loading import SHIPPED_MODEL, shipped_model_path

        shipped = shipped_model_path()
        if shipped is None:
            parser.error(f"no --checkpoint given and the shipped {SHIPPED_MODEL} is missing (make model builds it)")
        args.checkpoint = str(shipped)
    settings = EvalConfig(checkpoint=args.checkpoint, families=tuple(args.families),
                          episodes_per_family=args.episodes_per_family,
                          held_out_episodes_per_family=args.held_out_episodes_per_family,
                          seed_start=args.seed_start,
                          device=args.device, ema_alpha=args.ema_alpha, max_episode_steps=args.max_episode_steps)
    try:
        settings = apply_overrides(settings, args.set, where="rt1-eval --set")
    except ValueError as exc:
        parser.error(str(exc))
    checkpoint = Path(args.checkpoint).resolve()
    output = args.output or f"outputs/eval/{checkpoint.parent.name}_{checkpoint.name}{'_direct' if args.direct else ''}"
    if args.record:
        if args.direct:
            parser.error("--record writes the episode's ROS topics; --direct has none")
        settings = replace(settings, record_dir=str(Path(output) / "episodes"))
    report = evaluate(settings, direct=args.direct, output=output, progress=not args.no_progress)
    print(report["table_markdown"])
    print(f"saved {output}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
