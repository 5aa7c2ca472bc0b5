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

Seeds come from the protocol's ``train`` range only (config/sim.yaml ``seeds``; dev and report seeds are
evaluation's), and scenes from one named condition (``--condition``, default ``seen``: the training distribution
of looks, camera mountings, object counts and wordings). Under ``seen`` no target is ever one of the held-out
(family, object) pairs (config/sim.yaml ``tasks.held_out_pairs``): those instructions never appear in training; the
objects still appear as distractors and as the targets of other families. Each episode's ``extra`` records the
condition, the scene look and the held-out pairs, so training records them in the checkpoint and ``rt1-eval`` can
tell which conditions a checkpoint has seen.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rt1_ros.configuration.action_layout import ARM_DELTA_DIMS, BASE_DIMS, CONTINUOUS_DIMS, MODE_DIM
from rt1_ros.data.dataset import EXPERT_LABELS, EpisodeInfo, EpisodeWriter, open_or_empty
from rt1_ros.inference.image_decoding import resize_for_model

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


@dataclass(frozen=True)
class GenerateConfig:
    """Every option of one rt1-generate run: the flags of the command, and the ``generate:`` section of a recipe
    (rt1_ros.training.recipe)."""

    output: str = ""  # dataset directory (created; appended to if it exists)
    families: tuple[str, ...] = ("pick", "push", "move_near")
    episodes_per_family: int = 100
    seed_start: int = 0  # episode i of a family uses seed seed_start + i, inside config/sim.yaml seeds.train
    condition: str = "seen"  # config/sim.yaml conditions: how scenes and instructions are drawn
    frame_size: int = DEFAULT_FRAME_SIZE  # stored frame side in px (above the model's, for crop augmentation)
    keep_failed: bool = False  # also write episodes the expert failed (marked success: false)
    max_steps: int = 0  # 0 = the family's step budget
    workers: int = 1  # simulator processes
    arm_noise: float = 0.0  # DART: std of the executed arm x/y/z delta noise in m (yaw gets 5x this in rad)
    base_noise: float = 0.0  # DART: std of the executed base vx/vy noise in m/s (yaw rate the same in rad/s)
    noise_probability: float = 0.5  # fraction of steps that are noised

    @property
    def noise(self) -> ActionNoise:
        return ActionNoise(arm_translation_m=self.arm_noise, arm_yaw_rad=5 * self.arm_noise,
                           base_linear_mps=self.base_noise, base_yaw_rate_rps=self.base_noise,
                           probability=self.noise_probability)


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


def _init_worker(output: str, frame_size: int, keep_failed: bool, max_steps: int | None, noise: ActionNoise,
                 condition: str, rollout: PolicyRollout = PolicyRollout()) -> None:
    from rt1_ros.configuration.action_layout import ActionSpaceConfig
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    policy = None
    if rollout.active:
        from rt1_ros.inference.options import InferenceOptions
        from rt1_ros.runtime.policy_loading import PolicySource, load_policy

        # One thread per worker: the workers already fill the cores.
        policy = load_policy(PolicySource(checkpoint=rollout.checkpoint, device="cpu",
                                          inference=InferenceOptions(num_threads=1))).policy
    _worker_state.update(sim=MobileManipulatorSim(condition=condition), writer=EpisodeWriter(output),
                         frame_size=frame_size, keep_failed=keep_failed, action_space=ActionSpaceConfig.from_yaml(),
                         max_steps=max_steps, noise=noise, rollout=rollout, policy=policy)


def _run_job(job: EpisodeJob) -> JobOutcome:
    from rt1_ros.sim.episode import SCENE_STATE_NAMES, run_episode
    from rt1_ros.sim.experts import ScriptedExpert

    state = _worker_state
    sim = state["sim"]
    task = sim.reset(job.family, job.seed)
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
             "held_out": list(sim.config.tasks.held_out_pairs), "condition": task.condition,
             "direction": task.direction, "reference": task.reference.name if task.reference else None,
             "receptacle": task.receptacle, "drawer": task.drawer,
             "scene_look": asdict(sim.look), "scene_state_names": list(SCENE_STATE_NAMES)}
    if rollout.active:
        extra.update(action_labels=EXPERT_LABELS, policy=asdict(rollout), policy_steps=driver.policy_steps)
    info = EpisodeInfo(instruction=task.instruction, task_family=task.family, seed=job.seed, success=result.success,
                       source=DAGGER_SOURCE if rollout.active else SOURCE, fps=sim.config.physics.control_rate_hz,
                       extra=extra)
    state["writer"].write(frames, result.actions.astype(np.float32), info, scene_state=result.scene_states)
    return JobOutcome(job.family, job.seed, result.success, True, result.steps)


def plan_jobs(output: str, families: list[str], episodes_per_family: int, seed_start: int, condition: str = "seen",
              rollout: PolicyRollout = PolicyRollout()) -> list[EpisodeJob]:
    source = DAGGER_SOURCE if rollout.active else SOURCE
    existing = open_or_empty(output)
    done = existing.existing_keys() if existing else set()
    from rt1_ros.sim.episode import SCENE_STATE_NAMES

    others = {(e.info.extra or {}).get("condition") or "none (the fixed scene)" for e in existing or ()
              if e.info.source in (SOURCE, DAGGER_SOURCE)} - {condition}
    if others:
        # Seeds already there would be skipped although they show other scenes.
        raise SystemExit(f"{output} holds episodes of condition {sorted(others)[0]}, not {condition}; remove it or "
                         "choose another --output")

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


def check_training_seeds(seed_start: int, episodes_per_family: int) -> None:
    """ValueError unless every seed of the run lies in the protocol's train range (config/sim.yaml ``seeds``)."""
    from rt1_ros.sim.config import SimConfig

    train = SimConfig.from_yaml().seeds.train
    last = seed_start + episodes_per_family - 1
    if episodes_per_family > 0 and not (seed_start in train and last in train):
        raise ValueError(f"seeds {seed_start}-{last} leave the train range {train.first}-{train.last} "
                         "(config/sim.yaml seeds: dev and report seeds are for evaluation only)")


def generate(config: GenerateConfig, progress: bool = True,
             rollout: PolicyRollout = PolicyRollout()) -> list[JobOutcome]:
    from tqdm import tqdm

    check_training_seeds(config.seed_start, config.episodes_per_family)
    jobs = plan_jobs(config.output, list(config.families), config.episodes_per_family, config.seed_start,
                     config.condition, rollout)
    EpisodeWriter(config.output)  # creates the directory even when nothing is left to do
    bar = tqdm(total=len(jobs), desc="episodes", unit="ep", disable=not progress)
    outcomes: list[JobOutcome] = []
    init_args = (config.output, config.frame_size, config.keep_failed, config.max_steps or None, config.noise,
                 config.condition, rollout)
    if config.workers <= 1:
        _init_worker(*init_args)
        results = map(_run_job, jobs)
    else:
        # spawn: MuJoCo's GL context must not be inherited through fork.
        pool = multiprocessing.get_context("spawn").Pool(config.workers, initializer=_init_worker,
                                                         initargs=init_args)
        results = pool.imap_unordered(_run_job, jobs)
    try:
        for outcome in results:
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix(success=f"{sum(o.success for o in outcomes) / len(outcomes):.0%}")
    finally:
        bar.close()
        if config.workers > 1:
            pool.close()
            pool.join()
    return outcomes


def check_config(config: GenerateConfig) -> None:
    """ValueError (KeyError for unknown names) for what rt1-generate refuses before it starts."""
    from rt1_ros.sim.config import SimConfig

    sim_config = SimConfig.from_yaml()
    sim_config.condition(config.condition)
    for family in config.families:
        sim_config.tasks.family(family)
    check_training_seeds(config.seed_start, config.episodes_per_family)
    if not config.output:
        raise ValueError("an output directory is needed")


def report(config: GenerateConfig, outcomes: list[JobOutcome], elapsed: float, policy_driven: bool = False) -> str:
    """What a run did, per family, and the dataset it leaves."""
    lines = []
    for family in config.families:
        mine = [o for o in outcomes if o.family == family]
        if mine:
            lines.append(f"{family}: ran {len(mine)}, {'policy-driven' if policy_driven else 'expert'} success "
                         f"{sum(o.success for o in mine)}/{len(mine)}, written {sum(o.written for o in mine)}, "
                         f"steps {sum(o.steps for o in mine)}")
    dataset = open_or_empty(config.output)  # None when every episode so far was dropped
    lines.append(f"{len(outcomes)} episodes in {elapsed:.1f} s; dataset {config.output}: "
                 f"{len(dataset) if dataset else 0} episodes, {dataset.total_steps() if dataset else 0} steps")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="dataset directory (created; appended to if it exists)")
    parser.add_argument("--families", nargs="+", default=list(GenerateConfig.families), help="task families")
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
    parser.add_argument("--condition", default="seen",
                        help="scene condition (config/sim.yaml conditions); `seen` is the training distribution")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = GenerateConfig(output=args.output, families=tuple(args.families),
                            episodes_per_family=args.episodes_per_family, seed_start=args.seed_start,
                            condition=args.condition, frame_size=args.frame_size, keep_failed=args.keep_failed,
                            max_steps=args.max_steps or 0, workers=args.workers, arm_noise=args.arm_noise,
                            base_noise=args.base_noise, noise_probability=args.noise_probability)
    try:
        check_config(config)
    except (KeyError, ValueError) as error:
        parser.error(str(error).strip('"'))
    if not 0.0 <= args.policy_probability <= 1.0:
        parser.error("--policy-probability must be in [0, 1]")
    if args.policy and config.noise.active:
        parser.error("--policy (DAgger) and DART noise are two ways to leave the expert's path: use one")
    if args.policy:
        from rt1_ros.sim.experts import RELABELLING_FAMILIES

        unlabelled = [f for f in args.families if f not in RELABELLING_FAMILIES]
        if unlabelled:
            parser.error(f"--policy (DAgger): the expert cannot label {unlabelled} from the state; those families are "
                         f"recorded with the expert driving (--policy works for {list(RELABELLING_FAMILIES)})")
    if args.policy and not Path(args.policy, "model.safetensors").is_file():
        parser.error(f"--policy {args.policy}: no model.safetensors there (a checkpoint directory, e.g. <run>/best)")
    if args.policy:
        from rt1_ros.model.checkpoint import read_checkpoint_config
        from rt1_ros.inference.onnx_export import file_sha256
        from rt1_ros.sim.config import SimConfig

        families = set(config.families)
        held_out = sorted(p for p in SimConfig.from_yaml().tasks.held_out_pairs if p.split(":", 1)[0] in families)
        recorded = (read_checkpoint_config(args.policy)[2].get("dataset") or {}).get("held_out_targets") or []
        recorded = sorted(p for p in recorded if p.split(":", 1)[0] in families)
        if recorded != held_out:
            # New episodes must not teach the policy an instruction its evaluation reports as unseen.
            parser.error(f"config/sim.yaml tasks.held_out_pairs {held_out} differs from what {args.policy} "
                         f"was trained without: {recorded} (the families generated here)")
    rollout = PolicyRollout(checkpoint=args.policy, probability=args.policy_probability,
                            weights_sha256=file_sha256(Path(args.policy, "model.safetensors")) if args.policy else "")
    started = time.perf_counter()
    outcomes = generate(config, progress=not args.no_progress, rollout=rollout)
    print(report(config, outcomes, time.perf_counter() - started, policy_driven=rollout.active))
    return 0


if __name__ == "__main__":
    sys.exit(main())
