"""rt1-generate: scripted-expert demonstrations from the embedded simulator, written as an episode dataset.

    rt1-generate --output data/sim --families pick move_near --episodes-per-family 300 --workers 2

Episode ``i`` of a family uses seed ``seed_start + i``, so a dataset is reproducible and a rerun with a larger
``--episodes-per-family`` only adds the missing seeds (what is already in the manifest is skipped). Each step
records the camera frame the expert's action was taken on (rendered at the camera's full resolution, then shrunk
with the policy's own `resize_for_model`, so stored frames look like what the node would feed the model) and exactly
the 11-d action the expert commanded. Failed expert episodes are dropped unless ``--keep-failed`` (they are then
marked ``success: false`` and training skips them by default).
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import dataclass

import numpy as np

from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter, open_or_empty
from rt1_ros.runtime.image_decoding import resize_for_model

SOURCE = "sim_expert"
DEFAULT_FRAME_SIZE = 112


@dataclass(frozen=True)
class EpisodeJob:
    family: str
    seed: int


@dataclass(frozen=True)
class JobOutcome:
    family: str
    seed: int
    success: bool
    written: bool
    steps: int


_worker_state: dict = {}


def _init_worker(output: str, frame_size: int, keep_failed: bool, max_steps: int | None) -> None:
    from rt1_ros.model.action_tokenizer import ActionSpaceConfig
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    _worker_state.update(sim=MobileManipulatorSim(), writer=EpisodeWriter(output), frame_size=frame_size,
                         keep_failed=keep_failed, action_space=ActionSpaceConfig.from_yaml(), max_steps=max_steps)


def _run_job(job: EpisodeJob) -> JobOutcome:
    from rt1_ros.sim.episode import run_episode
    from rt1_ros.sim.expert import ScriptedExpert

    state = _worker_state
    sim = state["sim"]
    task = sim.reset(job.family, job.seed)
    expert = ScriptedExpert(sim, state["action_space"])
    expert.reset(task)
    result = run_episode(sim, task, expert.act, state["action_space"], max_steps=state["max_steps"],
                         record_images=True)
    if not result.success and not state["keep_failed"]:
        return JobOutcome(job.family, job.seed, False, False, result.steps)
    frames = np.stack([resize_for_model(image, state["frame_size"]) for image in result.images])  # (T,S,S,3)
    info = EpisodeInfo(instruction=task.instruction, task_family=task.family, seed=job.seed, success=result.success,
                       source=SOURCE, fps=sim.config.physics.control_rate_hz,
                       extra={"terminated": result.terminated, "target": task.target_name,
                              "camera_size": list(result.images[0].shape[:2])})
    state["writer"].write(frames, result.actions.astype(np.float32), info)
    return JobOutcome(job.family, job.seed, result.success, True, result.steps)


def plan_jobs(output: str, families: list[str], episodes_per_family: int, seed_start: int) -> list[EpisodeJob]:
    existing = open_or_empty(output)
    done = existing.existing_keys() if existing else set()
    jobs = [EpisodeJob(family, seed) for seed in range(seed_start, seed_start + episodes_per_family)
            for family in families if (SOURCE, family, seed) not in done]
    return jobs


def generate(output: str, families: list[str], episodes_per_family: int, seed_start: int = 0,
             frame_size: int = DEFAULT_FRAME_SIZE, keep_failed: bool = False, workers: int = 1,
             max_steps: int | None = None, progress: bool = True) -> list[JobOutcome]:
    from tqdm import tqdm

    jobs = plan_jobs(output, families, episodes_per_family, seed_start)
    EpisodeWriter(output)  # creates the directory even when nothing is left to do
    bar = tqdm(total=len(jobs), desc="episodes", unit="ep", disable=not progress)
    outcomes: list[JobOutcome] = []
    init_args = (output, frame_size, keep_failed, max_steps)
    if workers <= 1:
        _init_worker(*init_args)
        results = map(_run_job, jobs)
    else:
        # spawn: MuJoCo's GL context must not be inherited through fork.
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=init_args)
        results = pool.imap_unordered(_run_job, jobs)
    try:
        for outcome in results:
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix(success=f"{sum(o.success for o in outcomes) / len(outcomes):.0%}")
    finally:
        bar.close()
        if workers > 1:
            pool.close()
            pool.join()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="dataset directory (created; appended to if it exists)")
    parser.add_argument("--families", nargs="+", default=["pick", "move_near"], help="task families")
    parser.add_argument("--episodes-per-family", type=int, default=100)
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--frame-size", type=int, default=DEFAULT_FRAME_SIZE,
                        help="stored frame side in px (a bit above the model's, for random-crop augmentation)")
    parser.add_argument("--keep-failed", action="store_true", help="also write episodes the expert failed")
    parser.add_argument("--max-steps", type=int, default=None, help="override the family's step limit")
    parser.add_argument("--workers", type=int, default=1, help="simulator processes")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    outcomes = generate(args.output, args.families, args.episodes_per_family, args.seed_start, args.frame_size,
                        args.keep_failed, args.workers, args.max_steps, progress=not args.no_progress)
    elapsed = time.perf_counter() - started
    for family in args.families:
        mine = [o for o in outcomes if o.family == family]
        if mine:
            print(f"{family}: ran {len(mine)}, expert success {sum(o.success for o in mine)}/{len(mine)}, "
                  f"written {sum(o.written for o in mine)}, steps {sum(o.steps for o in mine)}")
    dataset = open_or_empty(args.output)  # None when every episode so far was dropped
    print(f"{len(outcomes)} episodes in {elapsed:.1f} s; dataset {args.output}: {len(dataset) if dataset else 0} "
          f"episodes, {dataset.total_steps() if dataset else 0} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
