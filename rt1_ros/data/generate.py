"""rt1-generate: scripted-expert demonstrations from the embedded simulator, written as an episode dataset.

    rt1-generate --output data/sim --families pick move_near --episodes-per-family 300 --workers 2

Episode ``i`` of a family uses seed ``seed_start + i``, so a dataset is reproducible and a rerun with a larger
``--episodes-per-family`` only adds the missing seeds (what is already in the manifest is skipped). Each step
records the camera frame the expert's action was taken on (rendered at the camera's full resolution, then shrunk
with the policy's own `resize_for_model`, so stored frames look like what the node would feed the model) and exactly
the 11-d action the expert commanded. Failed expert episodes are dropped unless ``--keep-failed`` (they are then
marked ``success: false`` and training skips them by default).

Two options shape the data for closed-loop use:

* ``--arm-noise`` / ``--base-noise`` (DART, Laskey et al. 2017): on a fraction of steps the simulator executes the
  expert's action plus Gaussian noise, while the dataset records the expert's clean action. The expert reads the
  perturbed state at the next step and corrects, so the demonstrations contain the recoveries a cloned policy needs
  once its own small errors take it off the expert's path (covariate shift).
* ``--policy CHECKPOINT`` (DAgger, Ross et al. 2011): the simulator executes the checkpoint's own actions (on a
  fraction ``--policy-probability`` of steps, the expert's otherwise) while the dataset records, for every state the
  policy visited, the action the expert would have taken there (``ScriptedExpert.follow_state`` recognises the
  expert's phase from the state). Its mistakes become states the data shows how to leave: the covariate shift that
  DART's noise only approximates. The policy's terminate is replaced by the expert's action until the expert
  terminates, so the data has terminate labels where they belong. These episodes are written with source
  ``sim_dagger`` and ``extra.action_labels: expert``; ``success`` is the executed episode's outcome (with the expert
  finishing what the policy would have stopped), and training keeps them whatever it was.
* ``--hold-out FAMILY:COLOUR_OBJECT ...`` (e.g. ``pick:green_cylinder``): seeds whose target is a held-out
  (family, object) pair are skipped, so that instruction never appears in training; the object still appears as a
  distractor and as the target of the other families. The list is written into every episode's ``extra`` so
  training records it in the checkpoint and ``rt1-eval`` can report those instructions separately (the paper's
  "unseen instructions" in miniature).
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rt1_ros.action_layout import ARM_DELTA_DIMS, BASE_DIMS, CONTINUOUS_DIMS, MODE_DIM
from rt1_ros.data.dataset import EXPERT_LABELS, EpisodeInfo, EpisodeWriter, open_or_empty
from rt1_ros.runtime.image_decoding import resize_for_model

SOURCE = "sim_expert"
DAGGER_SOURCE = "sim_dagger"
DEFAULT_FRAME_SIZE = 112


@dataclass(frozen=True)
class ActionNoise:
    """DART noise: on each step with probability ``probability``, Gaussian noise on the executed command."""

    arm_translation_m: float = 0.0  # std of x, y, z arm deltas
    arm_yaw_rad: float = 0.0  # std of the yaw delta (the experts' only rotation)
    base_linear_mps: float = 0.0  # std of base vx, vy
    base_yaw_rate_rps: float = 0.0
    probability: float = 0.5

    @property
    def active(self) -> bool:
        return self.probability > 0 and any(
            (self.arm_translation_m, self.arm_yaw_rad, self.base_linear_mps, self.base_yaw_rate_rps))

    def perturber(self, rng: np.random.Generator, action_space):
        """A function action (11,) -> executed action (11,); the terminate step and the gripper are never noised."""
        arm_std = np.array([self.arm_translation_m] * 3 + [0.0, 0.0, self.arm_yaw_rad])
        base_std = np.array([self.base_linear_mps, self.base_linear_mps, self.base_yaw_rate_rps])
        arm_mode, base_mode = action_space.mode_index("arm"), action_space.mode_index("base")

        def perturb(action: np.ndarray) -> np.ndarray:
            if rng.random() >= self.probability:
                return action
            noisy = np.array(action, dtype=float)
            mode = int(round(float(action[MODE_DIM])))
            if mode == arm_mode:
                noisy[ARM_DELTA_DIMS] += rng.normal(0.0, 1.0, 6) * arm_std
            elif mode == base_mode:
                noisy[BASE_DIMS] += rng.normal(0.0, 1.0, 3) * base_std
            noisy[:CONTINUOUS_DIMS] = np.clip(noisy[:CONTINUOUS_DIMS], action_space.low, action_space.high)
            return noisy

        return perturb


@dataclass(frozen=True)
class PolicyRollout:
    """DAgger: who drives the simulator while the expert labels. Empty ``checkpoint``: the expert drives."""

    checkpoint: str = ""
    probability: float = 1.0  # fraction of steps executing the policy's action (the rest: the expert's)
    weights_sha256: str = ""  # of the checkpoint's model.safetensors: which policy visited the states

    @property
    def active(self) -> bool:
        return bool(self.checkpoint)


class ExpertLabelledRollout:
    """One DAgger episode: ``label()`` is the expert's action for the current state (what the dataset records) and
    also renders the frame and asks the policy; ``execute(label)`` is what the simulator then runs: the policy's
    action, except a terminate, and the expert's terminate, which ends the episode."""

    def __init__(self, sim, expert, policy, rollout: PolicyRollout, rng: np.random.Generator) -> None:
        self.sim, self.expert, self.policy, self.rollout, self.rng = sim, expert, policy, rollout, rng
        self.images: list[np.ndarray] = []
        self._policy_action: np.ndarray | None = None
        self.policy_steps = 0
        self.terminate_index = expert.action_space.mode_index("terminate")

    def label(self) -> np.ndarray:
        image = self.sim.render()
        self.images.append(image)
        # Every frame goes through the policy, executed or not: its frame history must be the episode's.
        self._policy_action = np.asarray(self.policy.select_action(image).action, dtype=float)
        self.expert.follow_state()  # the policy took the last step: the phase comes from the state
        return self.expert.act()

    def execute(self, label: np.ndarray) -> np.ndarray:
        # The expert's terminate ends the episode, as in a demonstration: one terminate label per episode, not one
        # per step the policy would have carried on for.
        if self._terminates(label):
            return label
        # The policy's terminate is not executed before the expert's: the episode goes on (the expert drives that
        # step) to the state where the expert terminates. Else every early stop would leave a "carry on" label and
        # no terminate label at all, and the data would teach never to terminate.
        if self._terminates(self._policy_action):
            return label
        if self.rng.random() < self.rollout.probability:
            self.policy_steps += 1
            return self._policy_action
        return label

    def _terminates(self, action: np.ndarray) -> bool:
        return int(round(float(action[MODE_DIM]))) == self.terminate_index


def parse_held_out(entries: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``["pick:green_cylinder", ...]`` -> ``(("pick", "green_cylinder"), ...)``, checked against the sim config."""
    from rt1_ros.sim.config import SimConfig

    config = SimConfig.from_yaml()
    objects = {f"{c.name}_{shape}" for c in config.objects.colours for shape in ("cube", "cylinder")}
    pairs = []
    for entry in entries:
        family, sep, name = entry.partition(":")
        if not sep or family not in config.tasks.family_names or name not in objects:
            raise ValueError(f"--hold-out {entry!r}: expected FAMILY:COLOUR_SHAPE with FAMILY in "
                             f"{list(config.tasks.family_names)} and COLOUR_SHAPE in {sorted(objects)}")
        pairs.append((family, name))
    return tuple(pairs)


def target_key(colour: str, shape: str) -> str:
    return f"{colour}_{shape}"


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
    held_out: bool = False  # skipped: its (family, target) is held out of training


_worker_state: dict = {}


def _init_worker(output: str, frame_size: int, keep_failed: bool, max_steps: int | None, noise: ActionNoise,
                 held_out: tuple[tuple[str, str], ...], rollout: PolicyRollout = PolicyRollout()) -> None:
    from rt1_ros.action_layout import ActionSpaceConfig
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    policy = None
    if rollout.active:
        from rt1_ros.runtime.inference_optimisation import InferenceOptions
        from rt1_ros.runtime.policy_loading import PolicySource, load_policy

        # One thread per worker: the workers already fill the cores.
        policy = load_policy(PolicySource(checkpoint=rollout.checkpoint, device="cpu",
                                          inference=InferenceOptions(num_threads=1))).policy
    _worker_state.update(sim=MobileManipulatorSim(), writer=EpisodeWriter(output), frame_size=frame_size,
                         keep_failed=keep_failed, action_space=ActionSpaceConfig.from_yaml(), max_steps=max_steps,
                         noise=noise, held_out=held_out, rollout=rollout, policy=policy)


def _run_job(job: EpisodeJob) -> JobOutcome:
    from rt1_ros.sim.episode import SCENE_STATE_NAMES, run_episode
    from rt1_ros.sim.expert import ScriptedExpert

    state = _worker_state
    sim = state["sim"]
    task = sim.reset(job.family, job.seed)
    if (job.family, target_key(task.target.colour, task.target.shape)) in state["held_out"]:
        return JobOutcome(job.family, job.seed, False, False, 0, held_out=True)
    expert = ScriptedExpert(sim, state["action_space"])
    expert.reset(task)
    noise: ActionNoise = state["noise"]
    rollout: PolicyRollout = state["rollout"]
    # Seeded by the episode, so a dataset is reproducible whatever the worker count.
    perturb = noise.perturber(np.random.default_rng([job.seed, 7]), state["action_space"]) if noise.active else None
    if rollout.active:
        policy = state["policy"]
        policy.reset()
        policy.set_instruction(task.instruction)
        driver = ExpertLabelledRollout(sim, expert, policy, rollout, np.random.default_rng([job.seed, 11]))
        result = run_episode(sim, task, driver.label, state["action_space"], max_steps=state["max_steps"],
                             perturb=driver.execute, record_scene_state=True)
        result.images = driver.images
    else:
        result = run_episode(sim, task, expert.act, state["action_space"], max_steps=state["max_steps"],
                             record_images=True, perturb=perturb, record_scene_state=True)
    # A DAgger episode is kept whatever its outcome: its labels are the expert's for every state it visited.
    if not result.success and not state["keep_failed"] and not rollout.active:
        return JobOutcome(job.family, job.seed, False, False, result.steps)
    frames = np.stack([resize_for_model(image, state["frame_size"]) for image in result.images])  # (T,S,S,3)
    extra = {"terminated": result.terminated, "target": task.target_name,
             "camera_size": list(result.images[0].shape[:2]),
             "action_noise": asdict(noise) if noise.active else None,
             "held_out": [f"{f}:{n}" for f, n in state["held_out"]],
             "scene_state_names": list(SCENE_STATE_NAMES)}
    if rollout.active:
        extra.update(action_labels=EXPERT_LABELS, policy=asdict(rollout), policy_steps=driver.policy_steps)
    info = EpisodeInfo(instruction=task.instruction, task_family=task.family, seed=job.seed, success=result.success,
                       source=DAGGER_SOURCE if rollout.active else SOURCE, fps=sim.config.physics.control_rate_hz,
                       extra=extra)
    state["writer"].write(frames, result.actions.astype(np.float32), info, scene_state=result.scene_states)
    return JobOutcome(job.family, job.seed, result.success, True, result.steps)


def plan_jobs(output: str, families: list[str], episodes_per_family: int, seed_start: int,
              rollout: PolicyRollout = PolicyRollout()) -> list[EpisodeJob]:
    source = DAGGER_SOURCE if rollout.active else SOURCE
    existing = open_or_empty(output)
    done = existing.existing_keys() if existing else set()
    from rt1_ros.sim.episode import SCENE_STATE_NAMES

    stale = {tuple((e.info.extra or {}).get("scene_state_names") or ()) for e in existing or ()
             if e.info.source in (SOURCE, DAGGER_SOURCE)} - {tuple(SCENE_STATE_NAMES)}
    if stale:
        # New seeds would not stack with the old ones (the trainer refuses mixed widths), and the old episodes lack
        # what the current recipe trains on.
        raise SystemExit(f"{output} was generated by an older rt1-generate (scene state {sorted(stale)[0]}, now "
                         f"{list(SCENE_STATE_NAMES)}); remove it or choose another --output")
    if rollout.active:
        others = {(e.info.extra.get("policy") or {}).get("weights_sha256") for e in existing or ()
                  if e.info.source == DAGGER_SOURCE} - {rollout.weights_sha256}
        if others:
            # Seeds already there would be skipped, keeping states another policy visited.
            raise SystemExit(f"{output} holds DAgger episodes of another policy (weights sha256 {sorted(others)[0]}, "
                             f"now {rollout.weights_sha256} from {rollout.checkpoint}); remove it or choose another "
                             "--output")
    jobs = [EpisodeJob(family, seed) for seed in range(seed_start, seed_start + episodes_per_family)
            for family in families if (source, family, seed) not in done]
    return jobs


def generate(output: str, families: list[str], episodes_per_family: int, seed_start: int = 0,
             frame_size: int = DEFAULT_FRAME_SIZE, keep_failed: bool = False, workers: int = 1,
             max_steps: int | None = None, progress: bool = True, noise: ActionNoise = ActionNoise(),
             held_out: tuple[tuple[str, str], ...] = (), rollout: PolicyRollout = PolicyRollout()) -> list[JobOutcome]:
    from tqdm import tqdm

    jobs = plan_jobs(output, families, episodes_per_family, seed_start, rollout)
    EpisodeWriter(output)  # creates the directory even when nothing is left to do
    bar = tqdm(total=len(jobs), desc="episodes", unit="ep", disable=not progress)
    outcomes: list[JobOutcome] = []
    init_args = (output, frame_size, keep_failed, max_steps, noise, tuple(held_out), rollout)
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
            ran = [o for o in outcomes if not o.held_out]
            if ran:
                bar.set_postfix(success=f"{sum(o.success for o in ran) / len(ran):.0%}")
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
    parser.add_argument("--arm-noise", type=float, default=0.0, metavar="M",
                        help="DART: std of the executed arm x/y/z delta noise in m (yaw gets 5x this in rad)")
    parser.add_argument("--base-noise", type=float, default=0.0, metavar="MPS",
                        help="DART: std of the executed base vx/vy noise in m/s (yaw rate the same in rad/s)")
    parser.add_argument("--noise-probability", type=float, default=0.5, help="fraction of steps that are noised")
    parser.add_argument("--policy", default="", metavar="CHECKPOINT",
                        help="DAgger: the checkpoint drives the simulator, the expert labels every visited state")
    parser.add_argument("--policy-probability", type=float, default=1.0,
                        help="with --policy: fraction of steps executing the policy's action (else the expert's)")
    parser.add_argument("--hold-out", nargs="*", default=[], metavar="FAMILY:COLOUR_SHAPE",
                        help="(family, target) pairs never generated, e.g. pick:green_cylinder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    noise = ActionNoise(arm_translation_m=args.arm_noise, arm_yaw_rad=5 * args.arm_noise,
                        base_linear_mps=args.base_noise, base_yaw_rate_rps=args.base_noise,
                        probability=args.noise_probability)
    try:
        held_out = parse_held_out(args.hold_out)
    except ValueError as error:
        parser.error(str(error))
    if not 0.0 <= args.policy_probability <= 1.0:
        parser.error("--policy-probability must be in [0, 1]")
    if args.policy and noise.active:
        parser.error("--policy (DAgger) and DART noise are two ways to leave the expert's path: use one")
    if args.policy and not Path(args.policy, "model.safetensors").is_file():
        parser.error(f"--policy {args.policy}: no model.safetensors there (a checkpoint directory, e.g. <run>/best)")
    if args.policy:
        from rt1_ros.model.checkpoint import read_checkpoint_config
        from rt1_ros.runtime.onnx_export import file_sha256

        recorded = (read_checkpoint_config(args.policy)[2].get("dataset") or {}).get("held_out_targets") or []
        if sorted(recorded) != sorted(f"{f}:{n}" for f, n in held_out):
            # New episodes must not teach the policy an instruction its evaluation reports as unseen.
            parser.error(f"--hold-out {sorted(args.hold_out)} differs from what {args.policy} was trained without: "
                         f"{sorted(recorded)}; pass the same pairs")
    rollout = PolicyRollout(checkpoint=args.policy, probability=args.policy_probability,
                            weights_sha256=file_sha256(Path(args.policy, "model.safetensors")) if args.policy else "")
    started = time.perf_counter()
    outcomes = generate(args.output, args.families, args.episodes_per_family, args.seed_start, args.frame_size,
                        args.keep_failed, args.workers, args.max_steps, progress=not args.no_progress,
                        noise=noise, held_out=held_out, rollout=rollout)
    elapsed = time.perf_counter() - started
    for family in args.families:
        mine = [o for o in outcomes if o.family == family]
        if mine:
            ran = [o for o in mine if not o.held_out]
            print(f"{family}: ran {len(ran)}, {'policy-driven' if rollout.active else 'expert'} success "
                  f"{sum(o.success for o in ran)}/{len(ran)}, "
                  f"written {sum(o.written for o in ran)}, steps {sum(o.steps for o in ran)}, "
                  f"held out {len(mine) - len(ran)}")
    dataset = open_or_empty(args.output)  # None when every episode so far was dropped
    print(f"{len(outcomes)} episodes in {elapsed:.1f} s; dataset {args.output}: {len(dataset) if dataset else 0} "
          f"episodes, {dataset.total_steps() if dataset else 0} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
