"""rt1-generate: short expert episodes land in the dataset with exactly the expert's actions."""
from __future__ import annotations

import numpy as np

from rt1_ros.data.dataset import EpisodeDataset, read_manifest
from rt1_ros.training.demonstrations import main
from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.sim.episode import run_expert_episode
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim


def test_generate_records_expert_actions_and_skips_existing_seeds(tmp_path, capsys):
    output = tmp_path / "data"
    assert main(["--output", str(output), "--families", "move_near", "--episodes-per-family", "1",
                 "--seed-start", "4", "--frame-size", "40", "--no-progress"]) == 0
    dataset = EpisodeDataset(output)
    assert len(dataset) == 1
    episode = dataset[0]
    assert episode.info.task_family == "move_near" and episode.info.seed == 4 and episode.info.success
    task = MobileManipulatorSim().reset("move_near", 4)
    assert episode.info.instruction == task.instruction and episode.info.extra["condition"] == "seen"
    assert episode.info.extra["scene_look"]["table"]["texture"] in ("plain", "checker", "speckle")
    frames, actions = np.asarray(episode.frames), episode.actions
    assert frames.shape == (episode.info.num_steps, 40, 40, 3) and frames.dtype == np.uint8
    # The recorded actions are the expert's own, step for step (the simulator is deterministic per seed).
    reference = run_expert_episode(MobileManipulatorSim(), "move_near", 4)
    np.testing.assert_allclose(actions, reference.actions.astype(np.float32))
    space = ActionSpaceConfig.from_yaml()
    assert np.all(actions[:, :10] >= space.low - 1e-6) and np.all(actions[:, :10] <= space.high + 1e-6)
    assert actions[-1, 10] == space.mode_index("terminate")
    assert frames.std() > 5  # a real rendered scene, not a blank frame
    # The privileged state beside each frame: the target stays put while the base drives up to it.
    state = episode.scene_state
    assert state.shape == (episode.info.num_steps, len(episode.info.extra["scene_state_names"]))
    target_distance = np.linalg.norm(state[:, 0:2], axis=1)
    assert target_distance[-1] < target_distance[0] - 0.1
    np.testing.assert_allclose(state[:, 6:9], state[:, 0:3] - state[:, 3:6], atol=1e-5)
    # Where the target is in the image: in view, and the frame there has the target's colour.
    names = episode.info.extra["scene_state_names"]
    u, v = state[0, names.index("target_image_u")], state[0, names.index("target_image_v")]
    assert 0 <= u < 1 and 0 <= v < 1
    pixel = frames[0, int(v * 40), int(u * 40)].astype(int)
    colour = episode.info.extra["target"].split("_")[0]
    channel = {"red": 0, "green": 1, "blue": 2}.get(colour)
    if channel is not None:
        assert pixel.argmax() == channel, (colour, pixel)

    # A rerun with a larger count adds only the missing seed.
    assert main(["--output", str(output), "--families", "move_near", "--episodes-per-family", "2",
                 "--seed-start", "4", "--frame-size", "40", "--no-progress"]) == 0
    assert sorted(e.info.seed for e in EpisodeDataset(output)) == [4, 5]
    assert "ran 1" in capsys.readouterr().out


def test_failed_episodes_are_dropped_unless_kept(tmp_path):
    output = tmp_path / "data"
    # Two steps cannot finish a pick: the episode fails.
    args = ["--output", str(output), "--families", "pick", "--episodes-per-family", "1", "--max-steps", "2",
            "--frame-size", "32", "--no-progress"]
    main(args)
    assert read_manifest(output) == []
    main(args + ["--keep-failed"])
    dataset = EpisodeDataset(output)
    assert len(dataset) == 1 and not dataset[0].info.success and dataset[0].info.num_steps == 2
    assert len(EpisodeDataset(output, successful_only=True)) == 0


def test_held_out_pairs_never_reach_the_dataset(tmp_path):
    """Under `seen` no target is a held-out pair (config/sim.yaml tasks.held_out_pairs); the list travels with every
    written episode, so training records it."""
    output = tmp_path / "data"
    assert main(["--output", str(output), "--families", "pick", "--episodes-per-family", "6", "--max-steps", "1",
                 "--keep-failed", "--frame-size", "32", "--no-progress"]) == 0
    dataset = EpisodeDataset(output, successful_only=False)
    held_out = MobileManipulatorSim().config.tasks.held_out_pairs
    assert len(dataset) == 6
    assert all(f"pick:{e.info.extra['target']}" not in held_out for e in dataset)
    assert all(e.info.extra["held_out"] == list(held_out) for e in dataset)


def test_conditions_and_seeds_are_checked(tmp_path):
    import pytest

    with pytest.raises(SystemExit):
        main(["--output", str(tmp_path / "a"), "--condition", "no_such_condition"])
    with pytest.raises(SystemExit):  # dev seeds are evaluation's
        main(["--output", str(tmp_path / "a"), "--seed-start", "100000", "--episodes-per-family", "1"])


def test_a_dataset_holds_one_condition(tmp_path):
    import pytest

    output = tmp_path / "data"
    args = ["--output", str(output), "--families", "move_near", "--episodes-per-family", "1", "--frame-size", "32",
            "--max-steps", "1", "--keep-failed", "--no-progress"]
    assert main(args) == 0
    with pytest.raises(SystemExit, match="condition seen, not camera"):
        main(args + ["--condition", "camera", "--episodes-per-family", "2"])


def test_dart_noise_perturbs_only_what_is_executed():
    from rt1_ros.training.demonstrations import ActionNoise
    from rt1_ros.sim.episode import run_episode
    from rt1_ros.sim.experts import ScriptedExpert

    space = ActionSpaceConfig.from_yaml()
    noise = ActionNoise(arm_translation_m=0.01, arm_yaw_rad=0.05, base_linear_mps=0.05, base_yaw_rate_rps=0.05,
                        probability=1.0)
    perturb = noise.perturber(np.random.default_rng(0), space)
    arm = np.zeros(11)
    arm[6], arm[10] = 1.0, space.mode_index("arm")
    noisy = perturb(arm)
    assert np.abs(noisy[:3]).max() > 0 and noisy[3] == noisy[4] == 0.0  # x y z (and yaw) noised, roll/pitch not
    assert noisy[6] == 1.0 and noisy[10] == arm[10] and np.all(noisy[7:10] == 0)  # gripper, mode, base untouched
    terminate = np.zeros(11)
    terminate[10] = space.mode_index("terminate")
    np.testing.assert_array_equal(perturb(terminate), terminate)

    # In an episode the dataset keeps the expert's clean actions while the simulator drifts and the expert corrects.
    sim = MobileManipulatorSim()
    clean = run_expert_episode(sim, "pick", 2)
    task = sim.reset("pick", 2)
    expert = ScriptedExpert(sim, space)
    expert.reset(task)
    # The generator seeds each episode's noise with [seed, 7]: this is pick seed 2 exactly as `make model` records it.
    recipe = ActionNoise(arm_translation_m=0.01, arm_yaw_rad=0.05, base_linear_mps=0.05, base_yaw_rate_rps=0.05)
    noised = run_episode(sim, task, expert.act, space, perturb=recipe.perturber(np.random.default_rng([2, 7]), space))
    assert noised.success and clean.success
    assert noised.steps != clean.steps or not np.allclose(noised.actions, clean.actions)
    assert np.all(noised.actions[:, :10] >= space.low - 1e-6) and np.all(noised.actions[:, :10] <= space.high + 1e-6)


def test_adding_seeds_to_data_recorded_with_other_scene_state_columns_is_refused(tmp_path, monkeypatch):
    import pytest

    import rt1_ros.sim.episode

    output = tmp_path / "data"
    args = ["--output", str(output), "--families", "move_near", "--episodes-per-family", "1", "--frame-size", "32",
            "--no-progress"]
    main(args)
    monkeypatch.setattr(rt1_ros.sim.episode, "SCENE_STATE_NAMES", rt1_ros.sim.episode.SCENE_STATE_NAMES + ("new",))
    with pytest.raises(SystemExit, match="older rt1-generate"):
        main(args[:5] + ["2"] + args[6:])


def _shipped_policy():
    from rt1_ros.inference.options import InferenceOptions
    from rt1_ros.runtime.policy_loading import PolicySource, load_policy, shipped_model_path

    return load_policy(PolicySource(checkpoint=str(shipped_model_path()), device="cpu",
                                    inference=InferenceOptions(backend="torch", num_threads=1))).policy


def test_dagger_executes_the_policy_and_records_the_expert():
    """rt1-generate --policy: what the simulator runs is the policy's action, what the dataset keeps is the expert's
    for the state the policy reached; the expert's terminate always ends the episode."""
    from rt1_ros.training.demonstrations import ExpertLabelledRollout, PolicyRollout
    from rt1_ros.sim.experts import ScriptedExpert

    space = ActionSpaceConfig.from_yaml()
    sim = MobileManipulatorSim()
    task = sim.reset("pick", 3)
    expert = ScriptedExpert(sim, space)
    expert.reset(task)
    policy = _shipped_policy()
    policy.set_instruction(task.instruction)
    always = ExpertLabelledRollout(sim, expert, policy, PolicyRollout("x", probability=1.0), np.random.default_rng(0))
    label = always.label()
    executed = always.execute(label)
    assert len(always.images) == 1 and always.images[0].shape == sim.render().shape
    assert not np.allclose(executed, label)  # the policy's own action, not the label
    assert always.policy_steps == 1
    never = ExpertLabelledRollout(sim, expert, policy, PolicyRollout("x", probability=0.0), np.random.default_rng(0))
    label = never.label()
    np.testing.assert_array_equal(never.execute(label), label)
    terminate = np.zeros(11)
    terminate[10] = space.mode_index("terminate")
    np.testing.assert_array_equal(always.execute(terminate), terminate)  # the expert's terminate ends it
    label = always.label()
    always._policy_action = terminate  # the policy would stop here: the expert's action runs instead
    np.testing.assert_array_equal(always.execute(label), label)


def test_dagger_episodes_are_kept_whatever_their_outcome(tmp_path):
    import shutil

    from rt1_ros.runtime.policy_loading import shipped_model_path

    output = tmp_path / "data"
    args = ["--output", str(output), "--families", "pick", "--episodes-per-family", "1", "--seed-start", "3",
            "--frame-size", "32", "--max-steps", "6", "--no-progress", "--policy", str(shipped_model_path())]
    assert main(args) == 0
    (episode,) = EpisodeDataset(output, successful_only=True)  # six steps never finish a pick: failed, still kept
    assert not episode.info.success and episode.info.source == "sim_dagger" and episode.info.expert_labelled
    assert episode.info.extra["policy_steps"] == episode.info.num_steps == 6
    assert len(episode.info.extra["policy"]["weights_sha256"]) == 64
    # The policy drove: its arm is elsewhere after six steps than where the expert takes it from the same start.
    from rt1_ros.sim.episode import run_episode
    from rt1_ros.sim.experts import ScriptedExpert

    space = ActionSpaceConfig.from_yaml()
    sim = MobileManipulatorSim()
    task = sim.reset("pick", 3)
    expert = ScriptedExpert(sim, space)
    expert.reset(task)
    expert_only = run_episode(sim, task, expert.act, space, max_steps=6, record_scene_state=True)
    np.testing.assert_allclose(episode.scene_state[0], expert_only.scene_states[0], atol=1e-6)  # same start
    gripper = slice(3, 6)
    assert np.abs(episode.scene_state[5, gripper] - expert_only.scene_states[5, gripper]).max() > 2e-3
    # The labels are the expert's: from the same start its first action exactly (a policy's would be bin centres),
    # then arm mode with the gripper open while it approaches.
    np.testing.assert_allclose(episode.actions[0], expert_only.actions[0], atol=1e-6)
    assert not np.allclose(episode.actions[:, :3], expert_only.actions[:, :3], atol=1e-3)  # for the policy's states
    assert np.all(episode.actions[:, 10] == space.mode_index("arm"))
    assert np.all(episode.actions[:, 6] == 0.0)

    import pytest

    with pytest.raises(SystemExit):  # argparse's error: "no model.safetensors there"
        main(args[:-1] + [str(tmp_path / "no_checkpoint")])
    other = tmp_path / "other_policy"  # another policy's weights (refused before they would be loaded)
    shutil.copytree(shipped_model_path(), other)
    (other / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes() + b" ")
    with pytest.raises(SystemExit, match="another policy"):
        main(args[:-2] + ["--policy", str(other), "--episodes-per-family", "2"])


def test_a_task_with_a_second_object_or_a_receptacle_records_it(tmp_path):
    output = tmp_path / "data"
    assert main(["--output", str(output), "--families", "move_object_near", "place_into", "--episodes-per-family",
                 "1", "--seed-start", "3", "--frame-size", "40", "--no-progress"]) == 0
    episodes = {e.info.task_family: e for e in EpisodeDataset(output)}
    sim = MobileManipulatorSim()
    near, into = sim.reset("move_object_near", 3), sim.reset("place_into", 3)
    assert episodes["move_object_near"].info.extra["reference"] == near.reference.name
    assert episodes["place_into"].info.extra["receptacle"] == into.receptacle
    assert episodes["place_into"].info.extra["reference"] is None
    assert episodes["place_into"].info.extra["drawer"] is None


def test_dagger_is_refused_for_families_the_expert_cannot_label_from_the_state(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--output", str(tmp_path / "data"), "--families", "pick", "open_drawer", "--policy", "models/rt1_sim"])
    assert "cannot label ['open_drawer']" in capsys.readouterr().err
