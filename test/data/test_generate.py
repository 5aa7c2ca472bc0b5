"""rt1-generate: short expert episodes land in the dataset with exactly the expert's actions."""
from __future__ import annotations

import numpy as np

from rt1_ros.data.dataset import EpisodeDataset, read_manifest
from rt1_ros.data.generate import main
from rt1_ros.model.action_tokenizer import ActionSpaceConfig
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
    assert episode.info.instruction.startswith("move near the ")
    frames, actions = np.asarray(episode.frames), episode.actions
    assert frames.shape == (episode.info.num_steps, 40, 40, 3) and frames.dtype == np.uint8
    # The recorded actions are the expert's own, step for step (the simulator is deterministic per seed).
    reference = run_expert_episode(MobileManipulatorSim(), "move_near", 4)
    np.testing.assert_allclose(actions, reference.actions.astype(np.float32))
    space = ActionSpaceConfig.from_yaml()
    assert np.all(actions[:, :10] >= space.low - 1e-6) and np.all(actions[:, :10] <= space.high + 1e-6)
    assert actions[-1, 10] == space.mode_index("terminate")
    assert frames.std() > 5  # a real rendered scene, not a blank frame

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
