"""Mode semantics, smoothing, the gripper rule and safety holds of the ROS-free controller.

The model here is a scripted stand-in for RT-1 (the controller's contract is the decoded action it receives); the
real model is exercised through RT1Policy in test/policy/test_modeling.py and in the node tests.
"""
import ast
import inspect

import numpy as np
import pytest
import torch

from rt1_ros.configuration.action_layout import ActionDimension, ActionSpaceConfig
from rt1_ros.convert.official_checkpoint import OFFICIAL_ACTION_DIMENSIONS
from rt1_ros.model.action_tokenizer import ActionTokenizer
from rt1_ros.runtime import controller as controller_module
from rt1_ros.runtime.controller import Controller, ControllerConfig, Frame, InstructionError, Mode
from rt1_ros.policy import RT1Policy, RT1PolicyConfig
from rt1_ros.policy.control_policy import ControlPolicy, PolicyStep

FRAME = np.zeros((8, 8, 3), np.uint8)


class ScriptedPolicy:
    """Returns the queued actions in order; raises when an action is an exception."""

    def __init__(self, tokenizer: ActionTokenizer):
        self.tokenizer = tokenizer
        self.queue = []
        self.instruction = None
        self.resets = 0

    def set_instruction(self, text):
        self.instruction = text

    def reset(self):
        self.resets += 1

    def clear_instruction(self):
        self.instruction = None

    def select_action(self, rgb):
        action = self.queue.pop(0)
        if isinstance(action, Exception):
            raise action
        return PolicyStep(tokens=self.tokenizer.encode(np.nan_to_num(action)), action=np.asarray(action, float),
                          inference_ms=1.0)


PROTOCOL_MEMBERS = {"instruction", "set_instruction", "clear_instruction", "reset", "select_action"}


def test_the_control_policy_protocol_is_what_the_controller_uses():
    """Controller reads exactly the protocol's members off its policy: no more (they would be duck typing again),
    no fewer (the protocol would ask test doubles for what nothing needs)."""
    tree = ast.parse(inspect.getsource(controller_module))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute) and node.value.attr == "policy"}
    assert used == PROTOCOL_MEMBERS
    declared = {name for name in vars(ControlPolicy) if not name.startswith("_")} | set(
        ControlPolicy.__annotations__)
    assert declared == PROTOCOL_MEMBERS
    assert inspect.signature(Controller).parameters["policy"].annotation in (ControlPolicy, "ControlPolicy")


def test_the_real_policy_and_the_scripted_one_satisfy_the_protocol(tiny_model, action_space, tokenizer):
    policy = RT1Policy(RT1PolicyConfig(model=tiny_model.config, action_space=action_space),
                       lambda text: torch.zeros(384), model=tiny_model)
    assert isinstance(policy, ControlPolicy)
    assert isinstance(ScriptedPolicy(tokenizer), ControlPolicy)
    for member in PROTOCOL_MEMBERS - {"instruction"}:
        assert callable(getattr(RT1Policy, member)), member
    assert policy.instruction is None
    assert not isinstance(object(), ControlPolicy)


def action(arm=(0, 0, 0, 0, 0, 0), gripper=0.0, base=(0, 0, 0), mode=0):
    return np.array([*arm, gripper, *base, mode], dtype=float)


@pytest.fixture
def setup(tokenizer, action_space):
    policy = ScriptedPolicy(tokenizer)
    controller = Controller(policy, action_space, ControllerConfig(ema_alpha=0.5, image_timeout_s=1.0,
                                                                   start_enabled=True))
    controller.set_instruction("pick up the red cube")
    return policy, controller


def frame(t):
    return Frame(FRAME, stamp=t, received_at=t)


def test_arm_mode_moves_the_arm_only(setup):
    policy, controller = setup
    policy.queue = [action(arm=(0.02, 0, 0, 0, 0, 0.1), base=(0.3, 0, 0.5), mode=0)]
    out = controller.step(0.0, frame(0.0))
    assert out.mode == Mode.ARM and out.moving
    np.testing.assert_allclose(out.arm_delta, [0.02, 0, 0, 0, 0, 0.1])
    np.testing.assert_array_equal(out.base_twist, 0)


def test_base_mode_moves_the_base_only(setup):
    policy, controller = setup
    policy.queue = [action(arm=(0.02, 0, 0, 0, 0, 0), base=(0.3, 0, 0.5), mode=1)]
    out = controller.step(0.0, frame(0.0))
    assert out.mode == Mode.BASE
    np.testing.assert_array_equal(out.arm_delta, 0)
    np.testing.assert_allclose(out.base_twist, [0.3, 0, 0.5])


def test_terminate_latches_until_a_new_instruction(setup):
    policy, controller = setup
    policy.queue = [action(base=(0.3, 0, 0), mode=2), action(base=(0.3, 0, 0), mode=1)]
    out = controller.step(0.0, frame(0.0))
    assert out.done and not out.moving and np.all(out.base_twist == 0)
    out = controller.step(0.4, frame(0.4))
    assert out.mode == Mode.TERMINATE and not out.moving and len(policy.queue) == 1  # no inference while done
    controller.set_instruction("move near the blue cube")
    assert controller.step(0.8, frame(0.8)).moving


def test_ema_smooths_continuous_outputs(setup):
    policy, controller = setup
    policy.queue = [action(base=(0.4, 0, 0), mode=1), action(base=(0.0, 0, 0), mode=1)]
    controller.step(0.0, frame(0.0))
    out = controller.step(0.3, frame(0.3))
    assert out.base_twist[0] == pytest.approx(0.2, abs=0.01)


def test_gripper_uses_hysteresis_not_ema(setup):
    policy, controller = setup
    values = [0.3, 0.7, 0.5, 0.45, 0.35, 0.55]
    policy.queue = [action(gripper=g) for g in values]
    states = [controller.step(0.1 * i, frame(0.1 * i)).gripper for i in range(len(values))]
    assert states == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_limits_clamp_speeds(tokenizer, action_space):
    policy = ScriptedPolicy(tokenizer)
    controller = Controller(policy, action_space, ControllerConfig(ema_alpha=1.0, max_base_linear_speed=0.2,
                                                                   max_base_angular_speed=0.3, start_enabled=True))
    controller.set_instruction("go")
    policy.queue = [action(base=(0.5, 0.5, -1.0), mode=1)]
    out = controller.step(0.0, frame(0.0))
    assert np.linalg.norm(out.base_twist[:2]) == pytest.approx(0.2)
    assert out.base_twist[2] == pytest.approx(-0.3)


def test_each_dimension_is_mapped_onto_the_robot_before_smoothing_the_gripper_rule_and_limits(tokenizer):
    """A converted release decodes in Google's units: gripper -1 (open) .. +1 (close) becomes the node's 0 .. 1,
    a world_vector unit becomes scale metres, a base displacement per step becomes a velocity; then the limits."""
    released = ActionSpaceConfig(dimensions=tuple(
        ActionDimension(name, low, high, *{"arm_x": (0.02, 0.0), "gripper": (0.5, 0.5),
                                           "base_x": (3.0, 0.0)}.get(name, (1.0, 0.0)))
        for name, low, high in OFFICIAL_ACTION_DIMENSIONS), rounding="truncate")
    policy = ScriptedPolicy(ActionTokenizer(released))
    controller = Controller(policy, released, ControllerConfig(ema_alpha=1.0, max_base_linear_speed=0.5,
                                                               start_enabled=True))
    controller.set_instruction("pick coke can")
    policy.queue = [action(arm=(0.5, 0.02, 0, 0, 0, 0), gripper=0.9, mode=0), action(gripper=0.0, mode=0),
                    action(gripper=-0.9, mode=0), action(base=(0.1, 0, 0), gripper=0.1, mode=1),
                    action(base=(0.4, 0, 0), mode=1)]
    out = controller.step(0.0, frame(0.0))
    np.testing.assert_allclose(out.arm_delta[:2], [0.01, 0.02])  # arm_x scaled, arm_y as released
    assert out.gripper == 1.0  # +0.9 closedness -> 0.95
    assert controller.step(0.3, frame(0.3)).gripper == 1.0  # 0.0 -> 0.5: inside the band, stays closed
    assert controller.step(0.6, frame(0.6)).gripper == 0.0  # -0.9 -> 0.05
    out = controller.step(0.9, frame(0.9))
    assert out.gripper == 0.0  # +0.1 -> 0.55: inside the band, stays open
    assert out.base_twist[0] == pytest.approx(0.3)  # 0.1 per step at 3 steps/s
    assert controller.step(1.2, frame(1.2)).base_twist[0] == pytest.approx(0.5)  # 1.2 m/s, clamped


def test_a_zero_or_non_finite_scale_is_refused_naming_the_dimension():
    with pytest.raises(ValueError, match="base_yaw: need a finite, non-zero scale"):
        ActionDimension("base_yaw", -1.0, 1.0, scale=0.0)
    with pytest.raises(ValueError, match="gripper: need a finite, non-zero scale and a finite offset"):
        ActionDimension("gripper", 0.0, 1.0, offset=float("nan"))


def test_stale_camera_holds_and_clears_history(setup):
    policy, controller = setup
    policy.queue = [action(base=(0.3, 0, 0), mode=1)]
    assert controller.step(0.0, frame(0.0)).moving
    out = controller.step(1.5, None)
    assert out.mode == Mode.HOLD and not out.moving and "stale" in out.reason
    assert np.all(out.base_twist == 0) and np.all(out.arm_delta == 0)
    assert policy.resets == 1


def test_failed_and_non_finite_steps_hold_then_recover(setup):
    policy, controller = setup
    policy.queue = [RuntimeError("CUDA error: device-side assert"), action(base=(np.nan, 0, 0), mode=1),
                    action(base=(0.1, 0, 0), mode=1)]
    out = controller.step(0.0, frame(0.0))
    assert out.error and not out.moving and "CUDA error" in out.reason
    out = controller.step(0.3, frame(0.3))
    assert out.error and "non-finite" in out.reason
    out = controller.step(0.6, frame(0.6))
    assert out.moving and out.base_twist[0] == pytest.approx(0.1)
    assert controller.stats.errors == 2


def test_disabled_controller_computes_but_does_not_move(tokenizer, action_space):
    policy = ScriptedPolicy(tokenizer)
    controller = Controller(policy, action_space, ControllerConfig(start_enabled=False))
    controller.set_instruction("go")
    policy.queue = [action(base=(0.3, 0, 0), mode=1)]
    out = controller.step(0.0, frame(0.0))
    assert not out.moving and out.base_twist[0] == pytest.approx(0.3) and "dry run" in out.reason


@pytest.mark.parametrize("text", ["", "   \n\t", "x" * 10_000, "a" * 998 + "  b", "move near\x00 then stop"])
def test_unusable_instructions_are_refused(setup, text):
    _, controller = setup
    with pytest.raises(InstructionError):
        controller.set_instruction(text)
    assert controller.instruction is None  # the previous task does not carry on
    assert "instruction" in controller.step(0.0, frame(0.0)).reason


def test_no_instruction_or_no_camera_holds(tokenizer, action_space):
    controller = Controller(ScriptedPolicy(tokenizer), action_space, ControllerConfig(start_enabled=True))
    assert "instruction" in controller.step(0.0, None).reason
    controller.set_instruction("go")
    assert "camera" in controller.step(0.1, None).reason


def test_the_bin_next_to_zero_means_stop_not_creep(setup, tokenizer):
    policy, controller = setup
    # Tokens 127/128 decode to ∓½ bin on symmetric ranges: the policy's "zero".
    half_bin = tokenizer.decode(np.full(11, 128))[:10]
    policy.queue = [np.concatenate([half_bin, [1.0]]), np.concatenate([tokenizer.decode(np.full(11, 130))[:10], [1]])]
    out = controller.step(0.0, frame(0.0))
    assert out.mode == Mode.BASE and np.all(out.base_twist == 0.0)
    out = controller.step(0.3, frame(0.3))
    assert np.all(out.base_twist != 0.0), "two bins from zero is a real command"


def test_holds_answer_with_the_stamp_of_the_image_they_saw(tokenizer, action_space):
    controller = Controller(ScriptedPolicy(tokenizer), action_space, ControllerConfig(start_enabled=True))
    out = controller.step(0.0, frame(7.0))
    assert out.mode == Mode.HOLD and out.image_stamp == 7.0


def test_validating_an_instruction_touches_no_state(setup):
    policy, controller = setup
    assert controller.validate_instruction("  move   near\tthe cube ") == "move near the cube"
    with pytest.raises(InstructionError, match="1001 characters"):
        controller.validate_instruction("a" * 998 + "  b")  # collapses to 1000: the raw length counts
    with pytest.raises(InstructionError, match="NUL"):
        controller.validate_instruction("move near the blue cube\x00 then stop")
    assert policy.instruction == "pick up the red cube" and policy.resets == 0


def test_a_frame_that_aged_past_the_timeout_during_inference_is_not_acted_on(setup):
    """The node's check at the moment of acting, on an injected clock: the step began on a fresh frame, the
    inference took longer than image_timeout_s."""
    policy, controller = setup
    policy.queue = [action(base=(0.3, 0, 0), mode=1), action(base=(0.3, 0, 0), mode=1)]
    out = controller.step(10.0, frame(9.9))
    assert out.moving and not controller.is_stale(10.5)
    assert controller.is_stale(11.0)  # 1.1 s after the frame: too old to act on
    held = controller.expire(11.0, image_stamp=out.image_stamp)
    assert held.mode == Mode.HOLD and not held.moving and "too old" in held.reason
    assert held.image_stamp == 9.9 and np.all(held.base_twist == 0)
    assert policy.resets == 1  # the window starts afresh, as after a stale camera
    assert controller.last_frame_at == 9.9
    assert controller.step(11.1, frame(11.05)).moving  # a fresh frame acts again


def test_a_clock_jump_back_clears_history_smoothing_and_the_frame_time(setup):
    """A frame from 10 s is never stale at 0.3 s on the timeline after a reset: without the jump's reset, a step with
    no new frame repeated the last command, and the EMA carried on from before the jump."""
    policy, controller = setup
    policy.queue = [action(base=(0.4, 0, 0), mode=1), action(base=(0.0, 0, 0), mode=1)]
    assert controller.step(10.0, frame(10.0)).moving
    controller.clock_jumped_back()
    assert policy.resets == 1 and controller.last_frame_at is None
    out = controller.step(0.3, None)
    assert not out.moving and "camera" in out.reason
    held = controller.hold_step("waiting for a frame stamped after the jump", image_stamp=10.2)
    assert held.mode == Mode.HOLD and not held.moving and held.image_stamp == 10.2
    out = controller.step(0.4, frame(0.4))
    assert out.moving and out.base_twist[0] == 0.0, "smoothed with the command from before the jump"


def test_a_clock_jump_back_keeps_a_terminate_latched(setup):
    policy, controller = setup
    policy.queue = [action(mode=2)]
    assert controller.step(10.0, frame(10.0)).done
    controller.clock_jumped_back()
    assert controller.step(0.1, frame(0.1)).mode == Mode.TERMINATE
