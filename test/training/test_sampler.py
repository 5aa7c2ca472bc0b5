"""WindowSampler: training windows are built exactly as the node builds them at inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rt1_ros.inference.frame_history import pad_window_indices
from rt1_ros.training.config import TrainConfig
from rt1_ros.training.sampler import EpisodeArrays, WindowSampler, noisy_instructions


def test_windows_are_front_padded_like_inference():
    config = TrainConfig(segment_length=4, segments_per_batch=2, crop_scale_min=1.0)
    frames = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((7, 8, 8, 3), np.uint8)
    episode = EpisodeArrays(frames=frames, tokens=np.zeros((7, 11), np.int64), instruction_index=0, family="f")
    sampler = WindowSampler([episode], num_frames=6, image_size=8, config=config)
    batch = sampler._assemble([(0, 0, 3), (0, 4, 7)], rng=None)
    # Rows 0-2 hold frames 0-2 of the first run; rows 3-9 frames 0-6 (the second run's 5 frames of context + its own).
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    for target, step in zip(range(6), [0, 1, 2, 4, 5, 6]):
        ids = frame_ids[batch.windows[target]].tolist()
        assert ids == pad_window_indices(step, 6), (step, ids)


def _numbered_episode(steps: int, family: str = "f") -> EpisodeArrays:
    """Frame i is filled with the value i, so a window's frame ids can be read back from the images."""
    frames = np.arange(steps, dtype=np.uint8)[:, None, None, None] * np.ones((steps, 8, 8, 3), np.uint8)
    return EpisodeArrays(frames=frames, tokens=np.zeros((steps, 11), np.int64), instruction_index=0, family=family)


def test_history_dropout_shows_some_windows_only_their_current_frame():
    config = TrainConfig(segment_length=4, segments_per_batch=2, crop_scale_min=1.0, brightness=0.0, contrast=0.0,
                         saturation=0.0, history_dropout=0.5)
    sampler = WindowSampler([_numbered_episode(12)], num_frames=6, image_size=8, config=config)
    batch = sampler._assemble([(0, 6, 12)], rng=np.random.default_rng(1))
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    dropped = kept = 0
    for target, step in enumerate(range(6, 12)):
        ids = frame_ids[batch.windows[target]].tolist()
        if ids == [step] * 6:
            dropped += 1
        else:
            assert ids == pad_window_indices(step, 6), (step, ids)
            kept += 1
    assert dropped and kept  # seed 1 draws both outcomes among six windows


def test_history_dropout_never_touches_validation_windows():
    config = TrainConfig(segment_length=4, segments_per_batch=2, history_dropout=1.0)
    sampler = WindowSampler([_numbered_episode(9)], num_frames=6, image_size=8, config=config)
    batch = next(sampler.sequential())
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    for step in range(9):
        assert frame_ids[batch.windows[step]].tolist() == pad_window_indices(step, 6)


def _counted_episode(steps: int) -> EpisodeArrays:
    """Frame i is filled with i and step i's tokens are all i, so windows and targets can be read back."""
    episode = _numbered_episode(steps)
    episode.tokens = np.repeat(np.arange(steps, dtype=np.int64)[:, None], 11, axis=1)
    return episode


def test_every_frame_windows_are_whole_steps_each_a_target_and_validation_scores_each_step_once():
    """The released layout's windows: T consecutive steps, never padded, every step a target; validation scores an
    episode's first window whole and later ones at their newest step, so each step counts once, with the frames
    before it that a control step has."""
    config = TrainConfig(segment_length=3, segments_per_batch=4, crop_scale_min=1.0, brightness=0.0, contrast=0.0,
                         saturation=0.0)
    sampler = WindowSampler([_counted_episode(8)], num_frames=3, image_size=8, config=config, every_frame=True)
    batch = next(sampler.sequential())
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    ids = frame_ids[batch.windows].tolist()
    assert ids == [[s - 2, s - 1, s] for s in range(2, 8)]
    assert batch.targets.shape == (6, 3, 11) and (batch.targets[:, :, 0] == torch.tensor(ids)).all()
    scored_steps = sorted(batch.targets[:, :, 0][batch.scored].tolist())
    assert scored_steps == list(range(8))
    for seed in range(5):
        sample = sampler.sample(np.random.default_rng(seed))
        frame_ids = (sample.images[:, 0, 0, 0] * 255).round().long()
        for window, targets in zip(frame_ids[sample.windows].tolist(), sample.targets[:, :, 0].tolist()):
            assert window == targets == list(range(window[0], window[0] + 3)) and window[0] >= 0
        assert sample.scored is None  # training: every frame of every window
    try:
        WindowSampler([_counted_episode(2)], num_frames=3, image_size=8, config=config, every_frame=True)
    except ValueError as error:
        assert "fewer steps than a window of 3" in str(error)
    else:
        raise AssertionError("an episode shorter than a window was accepted")


def test_pad_and_crop_moves_every_frame_of_a_run_alike_and_keeps_the_size():
    """The release's crop: zeros around the frame, then one random crop of the frame's size for the whole run."""
    from rt1_ros.training.sampler import pad_and_crop

    frames = np.random.default_rng(0).integers(1, 256, size=(2, 6, 8, 3), dtype=np.uint8)  # no zero inside
    padded = np.pad(frames, ((0, 0), (2, 2), (3, 3), (0, 0)))
    offsets = set()
    for seed in range(30):
        out = pad_and_crop(frames, (2, 3), np.random.default_rng(seed))
        assert out.shape == frames.shape
        matches = [(top, left) for top in range(5) for left in range(7)
                   if np.array_equal(out, padded[:, top:top + 6, left:left + 8])]
        assert len(matches) == 1  # both frames cut at one offset
        offsets.add(matches[0])
    assert len(offsets) > 5  # drawn at random, not one fixed shift


def test_reworded_runs_draw_each_run_one_wording_and_validation_keeps_the_recorded_one():
    config = TrainConfig(segment_length=3, segments_per_batch=40, crop_scale_min=1.0)
    episode = _numbered_episode(6)
    episode.instruction_index, episode.wordings = 0, (1, 2, 3)
    sampler = WindowSampler([episode], num_frames=6, image_size=8, config=config)
    batch = sampler.sample(np.random.default_rng(0))
    assert set(batch.frame_instruction.tolist()) == {1, 2, 3}  # forty runs draw every wording, never the recorded
    validation = next(sampler.sequential())
    assert set(validation.frame_instruction.tolist()) == {0}


def test_a_simulator_episodes_wordings_are_its_tasks_training_templates():
    from rt1_ros.data.dataset import Episode, EpisodeInfo
    from rt1_ros.sim.config import SimConfig
    from rt1_ros.training.starting_point import task_wordings

    config = SimConfig.from_yaml()

    def episode(family, instruction, condition="seen", target="red_cube", **recorded):
        info = EpisodeInfo(instruction=instruction, task_family=family, seed=0, success=True, source="sim_expert",
                           fps=3.0, extra={"target": target, "condition": condition, **recorded})
        return Episode(info=info, path=None)

    push = task_wordings(episode("push", "shove the red block to the left"))
    family = config.tasks.family("push")
    assert len(push) == len(family.templates) * 2  # cube and block
    assert all(("left" in w.split()) and "red" in w and "right" not in w.split() for w in push)
    pick = task_wordings(episode("pick", "grab the blue cylinder", target="blue_cylinder"))
    assert "grab the blue cylinder" in pick and not any("cube" in w or "block" in w for w in pick)
    unseen = {template.format(colour="blue", object="cylinder", direction="") for template in
              config.tasks.family("pick").unseen_templates}
    assert not unseen & set(pick)
    assert task_wordings(episode("pick", "could you get me the red cube", condition="unseen_wordings")) == ()
    assert task_wordings(episode("pick", "pick up the red cube", target=None)) == ()  # not simulator data
    # A task that names a second object or a receptacle is reworded with it, as recorded; without the record
    # (the reference is not in every wording) the episode keeps its own words.
    near = task_wordings(episode("move_object_near", "move the red cube near the blue can", reference="blue_can"))
    assert near and all("red" in w and "blue" in w and ("can" in w or "tin" in w) for w in near)
    assert task_wordings(episode("move_object_near", "move the red cube near the blue can")) == ()
    into = task_wordings(episode("place_into", "put the red cube in the bowl", receptacle="bowl"))
    assert into and all("bowl" in w.split() and "tray" not in w for w in into)
    # reword_paraphrases: the family's paraphrases join the templates' wordings, worded for the same task.
    paraphrased = task_wordings(episode("push", "shove the red block to the left"), paraphrases=True)
    assert set(push) < set(paraphrased) and len(paraphrased) == len(push) + 2 * len(family.paraphrases)
    assert all(("left" in w.split()) and "red" in w and "right" not in w.split() for w in paraphrased)


def test_each_frame_records_the_run_it_was_sampled_for():
    config = TrainConfig(segment_length=4, segments_per_batch=2, crop_scale_min=1.0)
    sampler = WindowSampler([_numbered_episode(9), _numbered_episode(5)], num_frames=6, image_size=8, config=config)
    batch = sampler._assemble([(0, 6, 9), (1, 0, 2)], rng=None)
    # Run 0: frames 1-8 (5 of context before step 6, then 6-8); run 1: frames 0-1.
    assert batch.frame_run.tolist() == [0] * 8 + [1] * 2
    assert len(batch.frame_run) == len(batch.images) == len(batch.frame_instruction)


def _unit_rows(rows: int, width: int = 384, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.from_numpy(np.random.default_rng(seed).standard_normal(
        (rows, width)).astype(np.float32)), dim=-1)


def test_instruction_noise_moves_each_run_within_its_bound_and_keeps_the_length():
    base = _unit_rows(3)
    frame_text = torch.cat([base[0].expand(4, -1), base[1].expand(2, -1), 2.5 * base[2].expand(3, -1)])
    frame_run = torch.tensor([0] * 4 + [1] * 2 + [2] * 3)
    moved = noisy_instructions(frame_text, frame_run, np.random.default_rng(7), max_noise=0.7)
    torch.testing.assert_close(moved.norm(dim=-1), frame_text.norm(dim=-1))
    cosine = torch.nn.functional.cosine_similarity(moved, frame_text, dim=-1)
    assert (cosine >= np.sqrt(1.0 - 0.7 ** 2) - 1e-4).all(), cosine
    # One episode is worded once: every frame of a run moves the same way, the runs each their own way.
    for run in range(3):
        rows = moved[frame_run == run]
        torch.testing.assert_close(rows, rows[:1].expand_as(rows))
    assert not torch.allclose(moved[0] - frame_text[0], moved[4] - frame_text[4], atol=1e-3)


def test_instruction_noise_moves_as_far_as_its_setting_says_on_average():
    """s ~ U[0, 0.7] and a random direction nearly at right angles to e: the mean cosine is the mean of
    1/sqrt(1 + s²) over s, 0.93; 400 runs put the sample mean within 0.01 of it for any draw."""
    frame_text = _unit_rows(400, seed=3)
    cosine = torch.nn.functional.cosine_similarity(
        noisy_instructions(frame_text, torch.arange(400), np.random.default_rng(11), max_noise=0.7), frame_text, dim=-1)
    expected = float(np.mean(1.0 / np.sqrt(1.0 + np.linspace(0.0, 0.7, 10_001) ** 2)))
    assert abs(float(cosine.mean()) - expected) < 0.01, (float(cosine.mean()), expected)


def test_instruction_noise_depends_on_the_draw_and_vanishes_at_zero():
    frame_text, frame_run = _unit_rows(4), torch.arange(4)
    first = noisy_instructions(frame_text, frame_run, np.random.default_rng(1), max_noise=1.0)
    second = noisy_instructions(frame_text, frame_run, np.random.default_rng(2), max_noise=1.0)
    assert not torch.allclose(first, second, atol=1e-3)
    torch.testing.assert_close(noisy_instructions(frame_text, frame_run, np.random.default_rng(1), 0.0), frame_text)


def test_balance_families_gives_each_family_an_equal_share_of_runs():
    # Three long episodes of one family and one short of another: by steps the long family takes most runs.
    episodes = [_numbered_episode(40, "long") for _ in range(3)] + [_numbered_episode(6, "short")]
    by_steps = WindowSampler(episodes, num_frames=6, image_size=8, config=TrainConfig(segment_length=4))
    shares = by_steps.family_shares()
    assert shares["short"] == pytest.approx(9 / (3 * 43 + 9))  # each episode weighs its steps + segment_length - 1
    balanced = WindowSampler(episodes, num_frames=6, image_size=8,
                             config=TrainConfig(segment_length=4, balance_families=True))
    assert balanced.family_shares() == pytest.approx({"long": 0.5, "short": 0.5})
    # Within a family, episodes keep their proportion to length.
    mixed = [_numbered_episode(10, "a"), _numbered_episode(30, "a"), _numbered_episode(5, "b")]
    probabilities = WindowSampler(mixed, num_frames=6, image_size=8,
                                  config=TrainConfig(segment_length=1, balance_families=True))._probabilities
    assert probabilities.tolist() == pytest.approx([0.125, 0.375, 0.5])
