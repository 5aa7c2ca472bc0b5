"""rt1-eval: closed-loop success rate of a checkpoint in the simulator, through the real ROS 2 nodes, per condition.

    rt1-eval                                                     # the shipped models/rt1_sim, `seen`, dev seeds
    rt1-eval --checkpoint outputs/model/rt1_sim/best --condition all --episodes-per-family 50
    rt1-eval --condition all --episodes-per-family 50 --split report    # once per published model

Headline mode (default, "ros"): the real `Rt1Node` and the real `SimNode` run in this process
(`rt1_ros.closed_loop.loop`: a private DDS domain, one executor thread per node), and talk only over ROS 2 topics
(Fast DDS): the sim publishes `camera/image_raw` and the episode's instruction, the
policy node (remapped `image` -> `camera/image_raw`, `control_trigger: image`) answers each image with `rt1_action`,
`cmd_vel` and `arm_command`, and the sim in lockstep mode applies them and advances exactly one control period. So
the evaluation runs as fast as inference allows and measures the deployed code path: image decoding, frame-token
cache, controller mode rules, gripper hysteresis, clamps, message conversion. Episodes are started with the sim's
`reset_episode` service and scored from `episode_status` (done + success, latched by the sim); the policy node's
`~/reset` clears its history and terminate state between episodes.

`--direct` is a ROS-free shortcut for quick checks: `RT1Policy.select_action` on `sim.render()` via
`rt1_ros.sim.episode.run_episode` (raw decoded actions: no EMA, no gripper hysteresis, no node clamps), with the
simulator's failure analysis. It is labelled as such in every output; the ROS mode is the one to report.

Conditions (config/sim.yaml ``conditions``): each named condition is a declared variant of the scenes and the
instructions (``seen`` is the training distribution; ``unseen_pairs``, ``unseen_wordings``, ``distractors``,
``unseen_backgrounds``, ``camera`` each change one thing). Every condition runs the same seeds, so rows compare
episode for episode. A condition the checkpoint's training data contained is refused as a generalisation test
(``--force`` runs it anyway).

Seeds (config/sim.yaml ``seeds``): ``--split dev`` (default) is where every choice is made; ``--split report`` is
run once per published model: it is refused when the checkpoint's config.yaml already records a report run (unless
``--force``), and recorded there when it finishes. Per family, the first ``--episodes-per-family`` seeds from the
split's start (or ``--seed-start``, inside the split). ``--split train --direct`` replays scenes the training data
holds: how well the policy fits what it was taught (a diagnostic, never a result). Outputs:
``<output>/results.json`` (per episode and summary) and ``<output>/results.md`` (the table by condition, with 95 %
Wilson intervals), also printed; with ``--record`` (ROS mode) each episode's topics as a rosbag2/MCAP folder
``<output>/episodes/<condition>_<family>_<seed>``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from rt1_ros.closed_loop.success_table import EpisodeOutcome, markdown_table, summarise
from rt1_ros.configuration.yaml_config import add_override_argument, apply_overrides

FAMILIES = ("pick", "push", "move_near")  # config/sim.yaml tasks.default_families (test_evaluation checks they agree)
# Conditions that only reword or re-sample what training saw: evaluating them on a checkpoint trained on them is
# still a fair test of what they test.
TRAINING_CONDITIONS = ("seen", "nominal")


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str
    families: tuple[str, ...] = FAMILIES
    conditions: tuple[str, ...] = ("seen",)
    episodes_per_family: int = 10  # per condition
    split: str = "dev"  # config/sim.yaml seeds: dev (every choice), report (once per published model), train (fit)
    seed_start: int = -1  # -1: the split's first seed
    device: str = "cpu"
    ema_alpha: float = 1.0  # the demonstrations are unsmoothed expert actions; smoothing would lag them
    max_episode_steps: int = 0  # 0 = the family's budget (config/sim.yaml)
    lockstep_timeout_s: float = 5.0
    episode_timeout_s: float = 600.0
    record_dir: str = ""  # non-empty (--record): each ROS episode also as rosbag2/MCAP, <record_dir>/<name>
    workers: int = 1  # processes running episodes side by side, each with its own nodes and DDS domain


# ---------------------------------------------------------------------------------------------------- over ROS 2
class RosEvaluation:
    """Episodes through the real nodes over topics (`rt1_ros.closed_loop.loop`); one graph per condition, since the
    condition is the sim node's (read-only) parameter."""

    def __init__(self, settings: EvalConfig, idle_seed: int) -> None:
        self.settings = settings
        self.idle_seed = idle_seed
        self.record_dir = Path(settings.record_dir) if settings.record_dir else None
        self.loop = None
        self.condition = None
        self.lockstep_timeouts = 0

    def _loop_for(self, condition: str, family: str):
        from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig

        if self.condition != condition:
            self.close()
            settings = self.settings
            self.loop = ClosedLoop(ClosedLoopConfig(checkpoint=settings.checkpoint, device=settings.device,
                                                    ema_alpha=settings.ema_alpha, condition=condition,
                                                    max_episode_steps=settings.max_episode_steps,
                                                    lockstep_timeout_s=settings.lockstep_timeout_s,
                                                    episode_timeout_s=settings.episode_timeout_s,
                                                    record_bag=bool(settings.record_dir),
                                                    num_threads=threads_per_worker(settings.workers)),
                                   family, self.idle_seed)
            self.condition = condition
        return self.loop

    def run_episode(self, condition: str, family: str, seed: int) -> EpisodeOutcome:
        episode = self._loop_for(condition, family).run_episode(family, seed)
        if self.record_dir is not None:
            from rt1_ros.closed_loop.episode_bag import write_episode_bag

            write_episode_bag(self.record_dir / f"{condition}_{family}_{seed}", episode.bag_messages)
        return EpisodeOutcome(family=family, seed=seed, instruction=episode.instruction, success=episode.success,
                              steps=episode.steps, terminated=episode.terminated, wall_s=episode.wall_s,
                              inference_ms=episode.inference_ms, condition=condition)

    def close(self) -> None:
        if self.loop is not None:
            self.lockstep_timeouts += self.loop.lockstep_timeouts
            self.loop.close()
            self.loop = None
            self.condition = None


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
        self.lockstep_timeouts = 0

    def run_episode(self, condition: str, family: str, seed: int) -> EpisodeOutcome:
        from rt1_ros.sim.episode import run_episode
        from rt1_ros.sim.failure_analysis import FailureTracer

        started = time.monotonic()
        task = self.sim.reset(family, seed, condition)
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
                              inference_ms=inference, condition=condition, failure=tracer.classify(result.success))

    def close(self) -> None:
        self.sim.close()


# ---------------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class EpisodeJob:
    condition: str
    family: str
    seed: int


def trained_on(checkpoint: str) -> tuple[set[str], list[str]]:
    """(conditions the checkpoint's training data was drawn from, the (family:target) pairs it held out), as rt1-train
    recorded them. Data from before conditions existed is the fixed scene: ``nominal``."""
    from rt1_ros.model.checkpoint import read_checkpoint_config

    dataset = read_checkpoint_config(checkpoint)[2].get("dataset") or {}
    return set(dataset.get("conditions") or ["nominal"]), sorted(dataset.get("held_out_targets") or [])


def trained_families(checkpoint: str) -> tuple[str, ...]:
    """The task families the checkpoint's training data held, in config/sim.yaml ``tasks.default_families`` order
    and then ``tasks.families`` order; ``default_families`` when the checkpoint does not record them."""
    from rt1_ros.model.checkpoint import read_checkpoint_config
    from rt1_ros.sim.config import SimConfig

    tasks = SimConfig.from_yaml().tasks
    recorded = set((read_checkpoint_config(checkpoint)[2].get("dataset") or {}).get("families") or ())
    if not recorded:
        return tasks.default_families
    order = list(tasks.default_families) + [f for f in tasks.family_names if f not in tasks.default_families]
    return tuple(f for f in order if f in recorded) + tuple(sorted(recorded - set(order)))


def held_out_pairs_of(pairs, families) -> list[str]:
    """The ``family:target`` pairs among ``pairs`` whose family is one of ``families``, sorted."""
    return sorted(p for p in pairs if p.split(":", 1)[0] in families)


def check_conditions(settings: EvalConfig, force: bool = False) -> list[str]:
    """ValueError for a condition that is unknown or would not test what it says on this checkpoint; -> warnings
    for those ``force`` lets through."""
    from rt1_ros.sim.config import SimConfig

    config = SimConfig.from_yaml()
    for name in settings.conditions:
        config.condition(name)  # KeyError naming the known ones
    conditions, held_out = trained_on(settings.checkpoint)
    problems = []
    for name in settings.conditions:
        if name not in TRAINING_CONDITIONS and name in conditions:
            problems.append(f"{settings.checkpoint} was trained on condition {name!r}: it is no generalisation test")
        # Only the evaluated families' pairs matter: a family added to the simulator after the checkpoint was
        # trained brings held-out pairs the checkpoint never saw either way.
        asked = held_out_pairs_of(config.tasks.held_out_pairs, settings.families)
        recorded = held_out_pairs_of(held_out, settings.families)
        if config.condition(name).targets == "held_out" and asked != recorded:
            problems.append(f"condition {name!r} asks for config/sim.yaml tasks.held_out_pairs {asked}, but "
                            f"{settings.checkpoint} held out {recorded or 'none'}: they would not be unseen")
    if problems and not force:
        raise ValueError("; ".join(problems) + " (--force runs it anyway)")
    return problems


def seed_range(settings: EvalConfig) -> tuple[int, int]:
    """(first, last) seed of every family's run; ValueError when they leave the settings' split."""
    from rt1_ros.sim.config import SimConfig

    split = SimConfig.from_yaml().seeds.split(settings.split)
    first = split.first if settings.seed_start < 0 else settings.seed_start
    last = first + settings.episodes_per_family - 1
    if not (first in split and last in split):
        raise ValueError(f"seeds {first}-{last} leave the {settings.split} range {split.first}-{split.last} "
                         "(config/sim.yaml seeds)")
    return first, last


def plan_jobs(settings: EvalConfig) -> list[EpisodeJob]:
    """Per condition and family, the same seeds: the split's first ``episodes_per_family`` (from ``seed_start``).
    Families that have no held-out pair are left out of a condition that asks only for held-out pairs."""
    from rt1_ros.sim.config import SimConfig

    config = SimConfig.from_yaml()
    first, last = seed_range(settings)
    jobs = []
    for condition in settings.conditions:
        held_out_only = config.condition(condition).targets == "held_out"
        for family in settings.families:
            if held_out_only and not any(p.startswith(f"{family}:") for p in config.tasks.held_out_pairs):
                continue
            jobs += [EpisodeJob(condition, family, seed) for seed in range(first, last + 1)]
    return jobs


# ---------------------------------------------------------------------------------------------------- report runs
def recorded_report_runs(checkpoint: str) -> list:
    from rt1_ros.model.checkpoint import read_checkpoint_config

    return list(read_checkpoint_config(checkpoint)[2].get("report_runs") or [])


def report_run_record(report: dict, command: str) -> dict:
    """What config.yaml keeps of a report run: when, how, and every row's rate."""
    settings = report["settings"]
    return {"date": datetime.date.today().isoformat(), "command": command, "mode": report["mode"],
            "seeds": report["seeds"], "conditions": list(settings["conditions"]),
            "families": list(settings["families"]),
            "rows": {key: {"successes": row["successes"], "episodes": row["episodes"], "wilson95": row["wilson95"]}
                     for key, row in report["summary"].items()}}


# ---------------------------------------------------------------------------------------------------- the run
def threads_per_worker(workers: int) -> int:
    """Inference threads for each of ``workers`` processes: the cores shared out (0, all cores, for one)."""
    if workers <= 1:
        return 0
    return max(1, len(os.sched_getaffinity(0)) // workers)


def _run_jobs(settings: EvalConfig, direct: bool, idle_seed: int, jobs: list, progress: bool,
              done=None) -> tuple[list[EpisodeOutcome], int]:
    """Run ``jobs`` in this process, in order -> (outcomes, lockstep timeouts). ``done``: a queue told of each
    finished episode's success (a worker's progress)."""
    from tqdm import tqdm

    if settings.workers > 1 and direct:
        import torch

        torch.set_num_threads(threads_per_worker(settings.workers))
    runner = DirectEvaluation(settings) if direct else RosEvaluation(settings, idle_seed)
    outcomes: list[EpisodeOutcome] = []
    bar = tqdm(jobs, desc="eval", unit="ep", disable=not progress)
    try:
        for job in bar:
            outcomes.append(runner.run_episode(job.condition, job.family, job.seed))
            if done is not None:
                done.put(outcomes[-1].success)
            bar.set_postfix(condition=job.condition, success=f"{np.mean([o.success for o in outcomes]):.0%}")
    finally:
        bar.close()
        runner.close()
    return outcomes, runner.lockstep_timeouts


PARENT_CHECK_PERIOD_S = 1.0
_worker_done_queue = None  # a worker process's queue for its finished episodes (set by _start_worker)


def _start_worker(done_queue, parent_pid: int) -> None:
    """A worker process's start: keep the progress queue (a multiprocessing queue is passed at process creation
    only), and exit when the parent dies (killed, or a test's timeout), rather than evaluate on for nobody."""
    global _worker_done_queue
    _worker_done_queue = done_queue

    def exit_with_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_PERIOD_S)
        os._exit(1)

    threading.Thread(target=exit_with_parent, name="exit_with_parent", daemon=True).start()


def _run_worker_jobs(settings: EvalConfig, direct: bool, idle_seed: int,
                     jobs: list) -> tuple[list[EpisodeOutcome], int]:
    """_run_jobs in a worker process, telling the parent of each finished episode."""
    return _run_jobs(settings, direct, idle_seed, jobs, False, _worker_done_queue)


def _run_in_workers(settings: EvalConfig, direct: bool, idle_seed: int, jobs: list,
                    progress: bool) -> tuple[list[EpisodeOutcome], int]:
    """The jobs dealt out to ``settings.workers`` processes (every n-th job to one, so each keeps the conditions'
    order and rebuilds its nodes only when the condition changes); outcomes returned in the jobs' order. Each episode
    runs as it would alone: its own simulator, seed and policy state; only wall time and latency feel the neighbours.
    The workers exit when this process dies."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    workers = min(settings.workers, len(jobs))
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(done, os.getpid())) as pool:
        futures = [pool.submit(_run_worker_jobs, settings, direct, idle_seed, jobs[i::workers])
                   for i in range(workers)]
        successes = []
        with tqdm(total=len(jobs), desc=f"eval ({workers} workers)", unit="ep", disable=not progress) as bar:
            while len(successes) < len(jobs) and not any(f.done() and f.exception() for f in futures):
                try:
                    successes.append(done.get(timeout=1.0))
                except Exception:  # queue.Empty: no episode finished this second
                    continue
                bar.update(1)
                bar.set_postfix(success=f"{np.mean(successes):.0%}")
        results = [future.result() for future in futures]  # re-raises a worker's error
    ordered: list[EpisodeOutcome] = [None] * len(jobs)  # type: ignore[list-item]
    for i, (outcomes, _) in enumerate(results):
        ordered[i::workers] = outcomes
    return ordered, sum(timeouts for _, timeouts in results)


def evaluate(settings: EvalConfig, direct: bool = False, output: str | Path | None = None,
             progress: bool = True, force: bool = False) -> dict:
    warnings = check_conditions(settings, force)
    jobs = plan_jobs(settings)
    if not jobs:
        raise ValueError("nothing to evaluate: no families, conditions or episodes")
    mode_label = ("DIRECT (ROS-free Policy + simulator; not the deployed node path)" if direct
                  else "ROS 2 (rt1_node + sim_node over topics, lockstep)")
    # The sim node starts an episode of its own at construction: give it a seed no job uses, so its status can never
    # be mistaken for a job's.
    idle_seed = max(job.seed for job in jobs) + 1
    if settings.workers > 1:
        outcomes, lockstep_timeouts = _run_in_workers(settings, direct, idle_seed, jobs, progress)
    else:
        outcomes, lockstep_timeouts = _run_jobs(settings, direct, idle_seed, jobs, progress)
    summary = summarise(outcomes)
    table = markdown_table(summary, mode_label, settings.checkpoint, settings.families)
    # A timeout means an image went unanswered (e.g. it arrived before the instruction): the sim stepped with a
    # zero command. Reported so a slow or racy run is visible next to its numbers.
    if not direct:
        table += f"\nLockstep timeouts: {lockstep_timeouts}\n"
    failures = {name: row["failures"] for name, row in summary.items() if row.get("failures")}
    if failures:
        table += "\nFailures (from the simulator's state):\n" + "".join(
            f"- {name}: " + ", ".join(f"{kind} ×{count}" for kind, count in sorted(kinds.items())) + "\n"
            for name, kinds in failures.items() if not name.endswith("/all"))
    first, last = seed_range(settings)
    report = {"mode": "direct" if direct else "ros", "mode_label": mode_label, "settings": asdict(settings),
              "seeds": {"split": settings.split, "first": first, "last": last},
              "lockstep_timeouts": None if direct else lockstep_timeouts, "forced": warnings,
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
    parser.add_argument("--families", nargs="+", default=None,
                        help="task families (default: those the checkpoint was trained on)")
    parser.add_argument("--condition", nargs="+", default=["seen"], metavar="NAME",
                        help="conditions to evaluate (config/sim.yaml conditions), or `all`")
    parser.add_argument("--episodes-per-family", type=int, default=10, help="per condition")
    parser.add_argument("--split", default="dev", choices=("dev", "report", "train"),
                        help="seed range (config/sim.yaml seeds): dev for every choice, report once per model; train "
                             "(--direct only): the scenes the training data holds, a check of the fit, never a result")
    parser.add_argument("--seed-start", type=int, default=-1, help="first seed, inside the split (default its first)")
    parser.add_argument("--force", action="store_true",
                        help="run what the protocol refuses: a second report run, a condition the checkpoint "
                             "trained on")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--ema-alpha", type=float, default=1.0, help="rt1_node ema_alpha (1 = no smoothing)")
    parser.add_argument("--max-episode-steps", type=int, default=0, help="0 = the family's budget")
    parser.add_argument("--output", default=None, help="directory for results.json / results.md "
                                                       "(default outputs/eval/<checkpoint dir name>_<split>[_direct])")
    parser.add_argument("--direct", action="store_true", help="ROS-free quick check (not the headline number)")
    parser.add_argument("--record", action="store_true",
                        help="also write each episode as rosbag2/MCAP (Foxglove, ros2 bag play) in <output>/episodes/")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running episodes side by side (each its own nodes, DDS domain and share of "
                             "the cores); the outcomes are those of one process")
    parser.add_argument("--no-progress", action="store_true")
    add_override_argument(parser, "override any EvalConfig field, after the flags above (e.g. lockstep_timeout_s=10)")
    args = parser.parse_args(argv)
    from rt1_ros.runtime.policy_loading import checkpoint_or_shipped

    try:
        args.checkpoint = checkpoint_or_shipped(args.checkpoint)
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: at least 1")
    if args.record and args.direct:
        parser.error("--record writes the episode's ROS topics; --direct has none")
    from rt1_ros.sim.config import SimConfig

    sim_config = SimConfig.from_yaml()
    conditions = sim_config.condition_names if args.condition == ["all"] else tuple(args.condition)
    if "all" in args.condition and len(args.condition) > 1:
        parser.error("--condition all stands alone")
    if args.condition == ["all"]:
        conditions = tuple(c for c in conditions if c != "nominal")  # `all`: the generalisation conditions
    families = tuple(args.families) if args.families else trained_families(args.checkpoint)
    unknown = sorted(set(families) - set(sim_config.tasks.family_names))
    if unknown:
        parser.error(f"--families: unknown {unknown}; config/sim.yaml has {list(sim_config.tasks.family_names)}")
    settings = EvalConfig(checkpoint=args.checkpoint, families=families, conditions=conditions,
                          episodes_per_family=args.episodes_per_family, split=args.split, seed_start=args.seed_start,
                          device=args.device, ema_alpha=args.ema_alpha, max_episode_steps=args.max_episode_steps,
                          workers=args.workers)
    checkpoint = Path(args.checkpoint).resolve()
    output = args.output or (f"outputs/eval/{checkpoint.parent.name}_{checkpoint.name}_{args.split}"
                             f"{'_direct' if args.direct else ''}")
    try:
        settings = apply_overrides(settings, args.set, where="rt1-eval --set")
        if args.record:
            settings = replace(settings, record_dir=str(Path(output) / "episodes"))
        seed_range(settings)
        check_conditions(settings, args.force)
        if settings.split == "train" and not args.direct:
            raise ValueError("--split train is a quick check of the fit on the training scenes: use it with --direct")
        if settings.split == "report" and args.direct:
            raise ValueError("a report run is the ROS one (--direct is for quick dev checks)")
        if settings.split == "report" and recorded_report_runs(args.checkpoint) and not args.force:
            raise ValueError(f"{args.checkpoint}/config.yaml already records a report run: the report seeds are "
                             "used once per model (--force runs another, and records it too)")
    except (KeyError, ValueError) as exc:
        parser.error(str(exc).strip('"'))
    report = evaluate(settings, direct=args.direct, output=output, progress=not args.no_progress, force=args.force)
    print(report["table_markdown"])
    print(f"saved {output}/results.json and results.md")
    if settings.split == "report":
        from rt1_ros.model.checkpoint import append_report_run

        command = "rt1-eval " + " ".join(argv if argv is not None else sys.argv[1:])
        append_report_run(args.checkpoint, report_run_record(report, command))
        print(f"recorded the report run in {args.checkpoint}/config.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
