"""The closed-loop demo: the shipped RT-1 policy drives the embedded simulator over real ROS 2 topics.

    sim_node ── camera/image_raw, instruction ──▶ rt1_node ── cmd_vel, arm_command, rt1_action ──▶ sim_node

`make demo` runs one episode of each task family the checkpoint was trained on (pick, push, move_near for the
shipped one; `--families` names others) on fixed seeds the training data never used, with the shipped checkpoint
`models/rt1_sim`. Both nodes and an observer run in one process
(`rt1_ros.closed_loop.loop`: a private DDS domain, one executor thread per node); the simulator runs in lockstep, so an
episode runs as fast as inference and rendering allow. Written to --output:

    contact_sheet.png            first / middle / last frame of every episode, with instruction and outcome
    summary.json, summary.md     one entry per episode (family, seed, instruction, trained, success, steps, ...)
    <family>_<seed>/episode.mp4  the camera with instruction and commands overlaid; actions.png; summary.json
    <family>_<seed>/bag/         the episode's topics as a rosbag2 recording in MCAP storage (`episode_bag`):
                                 open bag/bag.mcap in Foxglove, or `ros2 bag play <family>_<seed>/bag`

    make demo                                                  # the shipped policy, one episode per family
    make demo DEMO_ARGS="--families pick --seeds 100003"       # another episode
    make demo DEMO_ARGS="--untrained --model-size tiny"        # plumbing only: an untrained model (banner)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rt1_ros.closed_loop.episode_report import EpisodeLog, EpisodeStep, EpisodeSummary, summarise_latency, write_report
from rt1_ros.configuration.yaml_config import add_override_argument, apply_overrides

DEFAULT_SEED = 100_000  # the first dev seed (config/sim.yaml seeds): never a training seed
NANOSECONDS = 1_000_000_000


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=None,
                        help="task families, in order (default: those the checkpoint was trained on)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help=f"one seed per family, or one for all (default {DEFAULT_SEED})")
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the shipped models/rt1_sim)")
    parser.add_argument("--untrained", action="store_true",
                        help="run a freshly initialised model instead of a checkpoint (its actions are meaningless)")
    parser.add_argument("--model-size", default="sim", help="size of the untrained model (config/model.yaml)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--condition", default="seen",
                        help="scene condition the episodes are drawn from (config/sim.yaml conditions)")
    parser.add_argument("--max-steps", type=int, default=0, help="step budget per episode (0: the family's)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="wall-clock limit per episode")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--attention", action="store_true",
                        help="draw the TokenLearner's attention maps (what each of the 8 learned tokens reads) under "
                             "every video frame")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="DDS domain, to watch the topics from outside (default: a private random one)")
    add_override_argument(parser, "override any ClosedLoopConfig field, after the flags above (e.g. ema_alpha=0.5)")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or [DEFAULT_SEED]
    if args.families is not None and len(args.seeds) not in (1, len(args.families)):
        parser.error(f"give one seed, or one per family ({len(args.families)})")
    if args.untrained and args.checkpoint:
        parser.error("--untrained and --checkpoint exclude each other")
    return args


def resolve_checkpoint(args: argparse.Namespace) -> str:
    """'' for the untrained model, else the checkpoint directory; exits with a clear message when it is missing."""
    from rt1_ros.runtime.policy_loading import SHIPPED_MODEL, UNTRAINED_BANNER, shipped_model_path

    if args.untrained:
        print("=" * 100 + f"\n{UNTRAINED_BANNER}\n" + "=" * 100, flush=True)
        return ""
    if args.checkpoint:
        return args.checkpoint
    shipped = shipped_model_path()
    if shipped is None:
        raise SystemExit(f"the shipped policy {SHIPPED_MODEL} is missing: `make model` rebuilds it, "
                         "or pass --checkpoint DIR (or --untrained)")
    return str(shipped)


def episode_log(episode) -> EpisodeLog:
    log = EpisodeLog(instruction=episode.instruction)
    for action in episode.actions:
        frame = episode.frames.get(action.stamp_ns)
        if frame is None:
            continue  # a hold published before the first image: nothing was seen
        log.steps.append(EpisodeStep(sim_time_s=action.stamp_ns / NANOSECONDS, frame=frame, arm=action.arm,
                                     base=action.base, mode=action.mode, inference_ms=action.inference_ms))
    return log


def attention_policy(checkpoint: str, model_size: str):
    """The network the node runs, loaded as the node loads it but on the eager torch path, for its TokenLearner
    maps (an ONNX backend does not expose them): the checkpoint's, or the node's untrained model of that size."""
    from rt1_ros.inference.options import REFERENCE
    from rt1_ros.runtime.policy_loading import PolicySource, load_policy

    return load_policy(PolicySource(checkpoint=checkpoint, model_size=model_size, device="cpu",
                                    inference=REFERENCE)).policy


def add_attention(log: EpisodeLog, policy) -> None:
    policy.set_instruction(log.instruction)
    for step in log.steps:
        step.attention = policy.attention_maps(step.frame)


def summarise_episode(episode, log: EpisodeLog, policy: str, trained: bool) -> EpisodeSummary:
    median_ms, p90_ms = summarise_latency(log)
    sim_time = log.steps[-1].sim_time_s - log.steps[0].sim_time_s if len(log.steps) > 1 else 0.0
    wall = episode.wall_s
    return EpisodeSummary(
        instruction=episode.instruction, task_family=episode.family, seed=episode.seed, policy=policy,
        trained=trained, steps=episode.steps, success=episode.success, sim_time_s=round(sim_time, 3),
        wall_time_s=round(wall, 2), control_rate_hz_wall=round(episode.steps / wall, 3) if wall > 0 else 0.0,
        real_time_factor=round(sim_time / wall, 3) if wall > 0 else 0.0,
        inference_ms_median=round(median_ms, 2), inference_ms_p90=round(p90_ms, 2),
        end_reason="policy terminated" if episode.terminated else "step budget used up")


def contact_sheet(logs: list[EpisodeLog], summaries: list[EpisodeSummary], path: Path) -> Path:
    """One row per episode: first, middle and last frame, the instruction and the outcome written above them."""
    import cv2

    tile = 240
    rows = []
    for log, summary in zip(logs, summaries):
        picks = [0, len(log.steps) // 2, len(log.steps) - 1] if log.steps else []
        tiles = []
        for index in picks:
            frame = cv2.resize(log.steps[index].frame, (tile, tile), interpolation=cv2.INTER_AREA)
            frame = np.ascontiguousarray(frame)
            cv2.putText(frame, f"step {index}", (6, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                        cv2.LINE_AA)
            tiles.append(frame)
        strip = np.concatenate(tiles, axis=1) if tiles else np.zeros((tile, 3 * tile, 3), np.uint8)
        outcome = "SUCCESS" if summary.success else "FAILED"
        colour = (40, 200, 60) if summary.success else (230, 50, 40)
        header = np.full((44, strip.shape[1], 3), 30, np.uint8)
        cv2.putText(header, f'"{summary.instruction}"  seed {summary.seed}', (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(header, f"{outcome} in {summary.steps} steps ({summary.end_reason}), "
                            f"{'trained' if summary.trained else 'UNTRAINED'}", (8, 37),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        rows.append(np.concatenate([header, strip], axis=0))
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def episode_plan(args: argparse.Namespace, checkpoint: str) -> tuple[list[str], list[int]]:
    """(families, one seed each): --families, else the checkpoint's trained families (an untrained model:
    config/sim.yaml tasks.default_families); one --seed serves every family."""
    from rt1_ros.closed_loop.evaluation import trained_families
    from rt1_ros.sim.config import SimConfig

    if args.families is not None:
        families = list(args.families)
    elif checkpoint:
        families = list(trained_families(checkpoint))
    else:
        families = list(SimConfig.from_yaml().tasks.default_families)
    if len(args.seeds) not in (1, len(families)):
        raise SystemExit(f"demo: give one seed, or one per family ({len(families)}: {' '.join(families)})")
    return families, list(args.seeds) * len(families) if len(args.seeds) == 1 else list(args.seeds)


def run_demo(args: argparse.Namespace) -> list[EpisodeSummary]:
    from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig
    from rt1_ros.closed_loop.episode_bag import write_episode_bag

    checkpoint = resolve_checkpoint(args)
    families, seeds = episode_plan(args, checkpoint)
    config = ClosedLoopConfig(checkpoint=checkpoint, model_size=args.model_size, device=args.device,
                              condition=args.condition, max_episode_steps=args.max_steps,
                              episode_timeout_s=args.timeout_s,
                              record_frames=True, record_bag=True, domain_id=args.domain_id)
    try:
        config = apply_overrides(config, args.set, where="demo --set")
    except ValueError as exc:
        raise SystemExit(f"demo: {exc}") from None
    summaries: list[EpisodeSummary] = []
    logs: list[EpisodeLog] = []
    args.output.mkdir(parents=True, exist_ok=True)
    looking = attention_policy(checkpoint, args.model_size) if args.attention else None
    with ClosedLoop(config, families[0], idle_seed=max(seeds) + 1) as loop:
        print(f"policy: {loop.policy_description}", flush=True)
        for family, seed in zip(families, seeds):
            episode = loop.run_episode(family, seed)
            log = episode_log(episode)
            if looking is not None:
                add_attention(log, looking)
            summary = summarise_episode(episode, log, loop.policy_description, trained=bool(checkpoint))
            write_report(log, summary, args.output / f"{family}_{seed}", fps=loop.control_rate_hz)
            write_episode_bag(args.output / f"{family}_{seed}" / "bag", episode.bag_messages)
            print(f"{family:9s} seed {seed}: {'success' if summary.success else 'FAILED '} in {summary.steps:2d} "
                  f"steps, {summary.wall_time_s:5.1f} s wall ({summary.control_rate_hz_wall:.1f} steps/s), "
                  f"'{summary.instruction}'", flush=True)
            summaries.append(summary)
            logs.append(log)
    contact_sheet(logs, summaries, args.output / "contact_sheet.png")
    write_summary(summaries, args.output)
    return summaries


SUMMARY_FIELDS = ("task_family", "seed", "instruction", "trained", "success", "steps", "wall_time_s",
                  "control_rate_hz_wall", "inference_ms_median", "end_reason")


def write_summary(summaries: list[EpisodeSummary], directory: Path) -> None:
    episodes = [{k: asdict(s)[k] for k in SUMMARY_FIELDS} for s in summaries]
    document = {"policy": summaries[0].policy if summaries else "", "episodes": episodes,
                "successes": sum(s.success for s in summaries), "episodes_run": len(summaries)}
    (directory / "summary.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    lines = ["| family | seed | instruction | outcome | steps | wall s | steps/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {s.task_family} | {s.seed} | {s.instruction} | {'success' if s.success else 'failed'} | {s.steps} | "
              f"{s.wall_time_s} | {s.control_rate_hz_wall} |" for s in summaries]
    (directory / "summary.md").write_text("# rt1_ros demo\n\n" + "\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    args = parse_arguments(argv)
    summaries = run_demo(args)
    print(f"\n{sum(s.success for s in summaries)}/{len(summaries)} episodes succeeded; wrote "
          f"{args.output / 'contact_sheet.png'}, {args.output / 'summary.json'} and one folder per episode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
