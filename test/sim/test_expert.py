"""Scripted experts: they solve their families, stay inside the action space and follow the mode rules."""
import dataclasses

import numpy as np
import pytest

from rt1_ros.sim.config import SimConfig
from rt1_ros.sim.episode import apply_rt1_action, run_expert_episode
from rt1_ros.sim.experts import ScriptedExpert
from rt1_ros.sim.experts.core import RELABELLING_FAMILIES


def _solved_within_budget(sim, space, family: str, seed: int):
    """The expert's episode, checked to succeed and terminate within the family's step budget with every action
    inside the action space; -> (actions (T, 11), mode names)."""
    result = run_expert_episode(sim, family, seed, space)
    assert result.success, f"{family} seed {seed}: {result.task.instruction}"
    assert result.terminated and result.steps <= sim.config.tasks.family(family).max_steps
    actions = result.actions
    assert np.all(actions[:, :10] >= space.low - 1e-9) and np.all(actions[:, :10] <= space.high + 1e-9)
    return actions, [space.mode_classes[int(m)] for m in actions[:, 10]]


@pytest.mark.parametrize("family", ("pick", "move_near", "push"))
def test_expert_succeeds_within_its_step_budget(sim, space, family):
    for seed in (100, 101, 102, 103):
        actions, modes = _solved_within_budget(sim, space, family, seed)
        assert modes[-1] == "terminate" and "terminate" not in modes[:-1]
        for action, mode in zip(actions, modes):
            if mode == "arm":
                assert np.all(action[7:10] == 0)
            if mode == "base":
                assert np.all(action[0:6] == 0)
        expected = {"pick": {"arm"}, "push": {"arm"}, "move_near": {"base"}}[family]
        assert set(modes[:-1]) == expected
        assert set(np.unique(actions[:, 6])) <= {0.0, 1.0}  # the gripper is never commanded half-closed


def test_mode_semantics_of_applied_actions(sim, space):
    sim.reset("move_near", 0)
    arm_start = sim.arm_target()[0]
    odom = sim.odometry()
    action = np.zeros(11)
    action[0:3] = 0.03  # arm delta present in a base-mode action must be ignored
    action[7] = 0.4
    action[10] = space.mode_index("base")
    assert not apply_rt1_action(sim, action, space)
    sim.advance(sim.config.physics.control_period_s)
    np.testing.assert_allclose(sim.arm_target()[0], arm_start)
    assert sim.odometry().x != pytest.approx(odom.x, abs=0.05)

    action[10] = space.mode_index("arm")  # now the base velocity must be ignored and the base stop
    assert not apply_rt1_action(sim, action, space)
    sim.advance(sim.config.physics.control_period_s)
    assert abs(sim.odometry().vx) < 0.01
    np.testing.assert_allclose(sim.arm_target()[0], arm_start + 0.03, atol=1e-6)

    action[10] = space.mode_index("terminate")
    assert apply_rt1_action(sim, action, space)
    target = sim.arm_target()[0]
    sim.advance(0.5)
    # Terminate freezes the target (the arm finishes its last, already commanded step) and stops the base.
    np.testing.assert_allclose(sim.arm_target()[0], target)
    np.testing.assert_allclose(sim.end_effector_position(), target, atol=0.003)
    assert abs(sim.odometry().vx) < 0.01


def _labelled_by_a_noisy_follower(sim, space, family: str, seed: int, follow: bool, noise_m: float = 0.004):
    """The expert labels, something else drives: each label goes through the tokenizer's bins (what a policy
    outputs) and gets Gaussian arm noise before it is executed. -> (success, labels (T,11))."""
    from rt1_ros.model.action_tokenizer import ActionTokenizer

    tokenizer = ActionTokenizer(space)
    task = sim.reset(family, seed)
    expert = ScriptedExpert(sim, space)
    expert.reset(task)
    rng = np.random.default_rng(seed)
    labels = []
    for _ in range(sim.config.tasks.family(family).max_steps):
        if follow:
            expert.follow_state()
        label = expert.act()
        labels.append(label)
        executed = tokenizer.decode(tokenizer.encode(label[None]))[0].astype(float)
        if int(round(executed[10])) == space.mode_index("arm"):
            executed[:3] += rng.normal(0.0, noise_m, 3)
        if apply_rt1_action(sim, executed, space):
            break
        sim.advance(sim.config.physics.control_period_s)
    return sim.success(), np.array(labels)


@pytest.mark.parametrize("family", ("pick", "push"))
def test_expert_labels_lead_a_noisy_follower_to_success_when_it_follows_the_state(sim, space, family):
    """DAgger's labels (rt1-generate --policy): with follow_state() the expert recognises its phase from the state,
    so labels close, lift or push and terminate even though its 2 mm waypoints are never hit exactly; executing
    them through bins and 4 mm noise succeeds. Without follow_state the same follower mostly never gets there."""
    terminate = space.mode_index("terminate")
    followed = [_labelled_by_a_noisy_follower(sim, space, family, seed, follow=True) for seed in range(4)]
    for success, labels in followed:
        assert success and labels[-1, 10] == terminate
    if family == "pick":
        assert all((labels[:, 6] == 1.0).any() for _, labels in followed)  # it closes
    plain = [_labelled_by_a_noisy_follower(sim, space, family, seed, follow=False) for seed in range(4)]
    assert sum(success and labels[-1, 10] == terminate for success, labels in plain) <= 1


def test_a_policy_closing_near_the_grasp_pose_is_labelled_to_finish_the_grasp(sim, space):
    """follow_state: a gripper closed 1.5 cm above where the expert would close is closing on the object; the label
    holds it closed (then lifts), rather than reopening at once and teaching the policy to let go."""
    task = sim.reset("pick", 0)
    expert = ScriptedExpert(sim, space)
    expert.reset(task)
    for _ in range(sim.config.tasks.family("pick").max_steps):  # the expert alone, up to where it closes
        action = expert.act()
        if action[6] == 1.0:
            break
        apply_rt1_action(sim, action, space)
        sim.advance(sim.config.physics.control_period_s)
    assert expert.phase == "close"
    fresh = ScriptedExpert(sim, space)  # another controller got here; this expert only labels
    fresh.reset(task)
    sim.apply_action(np.zeros(3), np.array([0.0, 0.0, 0.015, 0.0, 0.0, 0.0]), 1.0)
    sim.advance(sim.config.physics.control_period_s)
    fresh.follow_state()
    assert fresh.phase == "close" and fresh.act()[6] == 1.0
    task = sim.reset("pick", 0)  # closed at the start pose, far from the object
    sim.apply_action(np.zeros(3), np.zeros(6), 1.0)
    sim.advance(sim.config.physics.control_period_s)
    other = ScriptedExpert(sim, space)
    other.reset(task)
    other.follow_state()
    assert other.phase == "approach" and other.act()[6] == 0.0  # reopen and start again


def test_applied_actions_are_mapped_onto_the_robot_as_the_node_maps_them(sim, space):
    """rt1-eval --direct and DAgger rollouts drive the simulator through apply_rt1_action: a dimension's scale and
    offset apply there as in the node's controller (here arm_x halved)."""
    halved = dataclasses.replace(space, dimensions=tuple(
        dataclasses.replace(d, scale=0.5) if d.name == "arm_x" else d for d in space.dimensions))
    sim.reset("pick", 0)
    start = sim.arm_target()[0]
    action = np.zeros(11)
    action[0] = 0.04
    action[10] = space.mode_index("arm")
    assert not apply_rt1_action(sim, action, halved)
    sim.advance(sim.config.physics.control_period_s)
    np.testing.assert_allclose(sim.arm_target()[0], start + [0.02, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("family", [f.name for f in SimConfig.from_yaml().tasks.families
                                    if f.name not in RELABELLING_FAMILIES])
def test_follow_state_refuses_the_families_whose_phases_it_cannot_recognise(sim, space, family):
    """rt1-generate --policy relies on this: a family's DAgger labels would be wrong, so it says so up front."""
    expert = ScriptedExpert(sim, space)
    expert.reset(sim.reset(family, 0))
    with pytest.raises(NotImplementedError, match=family):
        expert.follow_state()


# The newer arm families (cans, the cabinet): same budget and mode rules; every step but the last is an arm step.
NEWER_ARM_FAMILIES = ("move_object_near", "knock_over", "place_upright", "open_drawer", "close_drawer",
                      "place_into_drawer")


@pytest.mark.parametrize("family", NEWER_ARM_FAMILIES)
def test_newer_arm_family_experts_succeed_within_their_step_budget(sim, space, family):
    for seed in (100, 101, 102):
        actions, modes = _solved_within_budget(sim, space, family, seed)
        assert modes[-1] == "terminate" and set(modes[:-1]) == {"arm"}
        assert np.all(actions[:-1, 7:10] == 0)
        assert set(np.unique(actions[:, 6])) <= {0.0, 1.0}
