"""The policy's safety and output logic, free of ROS: what the node publishes at each control step.

    newest frame ─ RT1Policy.select_action ─ decoded action (11) ─ finite? ─ onto the robot (scale, offset) ─ EMA
      (continuous dims) ─ gripper hysteresis ─ mode semantics ─ clamp to limits ─ ControlOutput (moving only when
      enabled and valid)

Mode semantics (docs/integration.md "What the node does"): arm → arm delta out, base zero; base → base twist out,
arm delta zero and gripper held; terminate → everything zero and the episode is latched done until a new instruction
or reset. Anything that leaves no valid action (no instruction, no camera, stale camera, failed or non-finite step)
yields a HOLD: zero motion.

The gripper is not EMA-smoothed (a half-closed gripper drops objects): it switches closed when the decoded
closedness exceeds `gripper_close_threshold`, open below `gripper_open_threshold`, and keeps its state in between.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Mode (the RT1Action mode values) is part of the action layout; importers of this module may keep taking it here.
from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, BASE_DIMS, CONTINUOUS_DIMS, GRIPPER_DIM, MODE_DIM,
                                                 NUM_ACTION_DIMS, ActionSpaceConfig, Mode)
from rt1_ros.configuration.parameter_spec import parameter
from rt1_ros.policy.control_policy import ControlPolicy


@dataclass(frozen=True)
class ControllerConfig:
    """Smoothing and safety limits; each field is also an rt1_node ROS parameter of the same name (docs/parameters.md
    "Parameters"), declared from the description, range and read-only flag given here."""

    ema_alpha: float = parameter(0.5, "EMA weight of the newest action (1 = no smoothing)", range=(0.01, 1.0))
    gripper_close_threshold: float = parameter(0.6, "gripper closes above this closedness", range=(0.0, 1.0))
    gripper_open_threshold: float = parameter(0.4, "gripper opens below this closedness", range=(0.0, 1.0))
    image_timeout_s: float = parameter(1.0, "zero motion when the newest valid image is older", range=(0.01, 60.0))
    max_base_linear_speed: float = parameter(0.5, "m/s, planar speed limit", range=(0.0, 5.0))
    max_base_angular_speed: float = parameter(1.0, "rad/s", range=(0.0, 10.0))
    max_arm_translation_step: float = parameter(0.05, "m per control step", range=(0.0, 0.5))
    max_arm_rotation_step: float = parameter(0.25, "rad per control step", range=(0.0, 3.15))
    start_enabled: bool = parameter(False, "false = dry run at start: compute and publish actions, send no motion",
                                    read_only=True)

    def __post_init__(self) -> None:
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ValueError("ema_alpha must be in (0, 1]")
        if not 0.0 <= self.gripper_open_threshold <= self.gripper_close_threshold <= 1.0:
            raise ValueError("need 0 <= gripper_open_threshold <= gripper_close_threshold <= 1")
        if self.image_timeout_s <= 0:
            raise ValueError("image_timeout_s must be positive")


@dataclass(frozen=True)
class ControlOutput:
    mode: Mode
    arm_delta: np.ndarray  # (6,) x y z [m], roll pitch yaw [rad] per step
    gripper: float  # 0 open, 1 closed
    base_twist: np.ndarray  # (3,) vx vy [m/s], wz [rad/s]
    tokens: np.ndarray  # (11,) policy tokens of this step (zeros when none)
    action: np.ndarray  # (11,) the smoothed, clamped action as published
    inference_ms: float
    moving: bool  # False: publish zero motion (disabled, holding, terminated)
    reason: str = ""  # why the robot is not moving, for logs and diagnostics
    image_stamp: object = None  # the stamp of the newest image used, opaque to the runtime
    error: bool = False
    new_inference: bool = False

    @property
    def done(self) -> bool:
        return self.mode == Mode.TERMINATE


@dataclass
class Frame:
    rgb: np.ndarray  # (H,W,3) uint8
    stamp: object
    received_at: float  # node clock, seconds


class InstructionError(ValueError):
    pass


@dataclass
class _SmoothingState:
    continuous: np.ndarray | None = None  # (10,) EMA state
    gripper_closed: bool = False


@dataclass
class ControllerStats:
    steps: int = 0
    inferences: int = 0
    errors: int = 0
    last_inference_ms: float = 0.0
    last_error: str = ""


class Controller:
    def __init__(self, policy: ControlPolicy, action_space: ActionSpaceConfig, config: ControllerConfig,
                 max_instruction_chars: int = 1000) -> None:
        self.policy = policy
        self.action_space = action_space
        self.config = config
        self.max_instruction_chars = max_instruction_chars
        self.enabled = config.start_enabled
        self.stats = ControllerStats()
        self._low = action_space.low
        self._high = action_space.high
        # With 256 bins over a range symmetric about zero, zero falls between two bins and decodes to ±½ bin: a
        # policy that means "stop" would creep (2 mm/s on the base at ±0.5 m/s). Values within half a bin of zero
        # are therefore zero. Gripper closedness is not a velocity and is left alone.
        self._zero_snap = (action_space.high - action_space.low) / (action_space.num_bins - 1) / 2 * (1 + 1e-6)
        self._zero_snap[GRIPPER_DIM] = 0.0
        self._smoothing = _SmoothingState()
        self._terminated = False
        self._last_frame_at: float | None = None
        self._last_output: ControlOutput | None = None

    # -- inputs -------------------------------------------------------------------------------------------------
    def validate_instruction(self, instruction: str) -> str:
        """The instruction as the policy gets it (whitespace collapsed); InstructionError for unusable text.

        Touches no state, so a caller may check an instruction while a step runs on another thread."""
        # The raw length: whitespace collapse must not let 1001 characters pass a 1000-character limit.
        if len(instruction) > self.max_instruction_chars:
            raise InstructionError(f"instruction has {len(instruction)} characters, more than "
                                   f"max_instruction_chars={self.max_instruction_chars}")
        if "\x00" in instruction:
            raise InstructionError("instruction contains a NUL character (a C string would end there)")
        text = " ".join(instruction.split())
        if not text:
            raise InstructionError("instruction is empty or whitespace only")
        return text

    def set_instruction(self, instruction: str) -> str:
        """Validate, embed, and start a new episode. Raises InstructionError for unusable text."""
        try:
            text = self.validate_instruction(instruction)
        except InstructionError:
            self.stop_episode()
            raise
        self.policy.set_instruction(text)
        self._new_episode()
        return text

    def stop_episode(self) -> None:
        """Drop the instruction: after an unusable one, better no task than the previous one by mistake."""
        self.policy.clear_instruction()
        self._new_episode()

    def reset(self) -> None:
        self.policy.reset()
        self._new_episode()

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled

    def update_config(self, config: ControllerConfig) -> None:
        self.config = config

    @property
    def instruction(self) -> str | None:
        return self.policy.instruction

    @property
    def terminated(self) -> bool:
        return self._terminated

    def is_stale(self, now: float) -> bool:
        return self._last_frame_at is None or now - self._last_frame_at > self.config.image_timeout_s

    @property
    def last_frame_at(self) -> float | None:
        """The time (on the clock of ``now``) of the newest frame a step has taken; None before the first."""
        return self._last_frame_at

    def clock_jumped_back(self) -> None:
        """The node's clock went back (a simulator reset its world, a recording looped): the frames in the history
        and the time of the newest one belong to the timeline before the jump, so they go, with the smoothing; a
        terminate stays latched (a new instruction or reset ends it, as always). Steps then hold until a frame is
        acted on (`hold_step` while the node waits for one stamped after the jump)."""
        self.policy.reset()
        self._smoothing.continuous = None
        self._last_frame_at = None
        self._last_output = None

    def hold_step(self, reason: str, image_stamp: object = None) -> ControlOutput:
        """A control step that acts on no frame: the caller has none it may act on (for ``reason``)."""
        self.stats.steps += 1
        return self._hold(reason, image_stamp=image_stamp)

    def expire(self, now: float, image_stamp: object = None) -> ControlOutput:
        """The hold to publish instead of a step's output whose frame was too old by the time it could be acted on
        (a long inference, a frozen process): like a stale camera, the window and smoothing start afresh."""
        age = now - self._last_frame_at if self._last_frame_at is not None else float("inf")
        self.policy.reset()
        self._smoothing.continuous = None
        return self._hold(f"frame too old to act on: {age:.2f} s old when the step finished, image_timeout_s="
                          f"{self.config.image_timeout_s:.2f}", image_stamp=image_stamp)

    # -- the control step ----------------------------------------------------------------------------------------
    def step(self, now: float, frame: Frame | None) -> ControlOutput:
        """One control step at node time ``now`` with the newest valid frame since the last step (or None)."""
        self.stats.steps += 1
        # Holds carry the stamp of the image they answer, so a lockstep consumer is never left waiting for it.
        stamp = frame.stamp if frame is not None else None
        if frame is not None:
            self._last_frame_at = frame.received_at
        if self.policy.instruction is None:
            return self._hold("waiting for an instruction", image_stamp=stamp)
        if self._terminated:
            return self._hold("episode terminated; send a new instruction or call reset", mode=Mode.TERMINATE,
                              image_stamp=stamp)
        if self._last_frame_at is None:
            return self._hold("waiting for camera images")
        if self.is_stale(now):
            # The cached frames are from before the gap: start the window afresh when images return.
            self.policy.reset()
            self._smoothing.continuous = None
            return self._hold(f"camera stale: no valid image for more than {self.config.image_timeout_s:.2f} s")
        if frame is None:
            # No new frame since the last step: keep the last command rather than re-stepping on an old image.
            return self._last_output if self._last_output is not None else self._hold("waiting for a new frame")
        try:
            result = self.policy.select_action(frame.rgb)
        except Exception as exc:  # any failure of the model (device error, shape error, …) must stop the robot
            self.policy.reset()
            self._smoothing.continuous = None
            return self._hold(f"inference failed: {type(exc).__name__}: {exc}", error=True, image_stamp=frame.stamp)
        self.stats.inferences += 1
        self.stats.last_inference_ms = result.inference_ms
        if not np.all(np.isfinite(result.action)):
            self.policy.reset()
            self._smoothing.continuous = None
            return self._hold("policy produced a non-finite action", error=True, image_stamp=frame.stamp)
        output = self._command_from_action(result.action, result.tokens, result.inference_ms, frame.stamp)
        self._last_output = output
        return output

    # -- internals -----------------------------------------------------------------------------------------------
    def _new_episode(self) -> None:
        self._terminated = False
        self._smoothing = _SmoothingState()
        self._last_output = None

    def _command_from_action(self, action: np.ndarray, tokens: np.ndarray, inference_ms: float,
                             stamp: object) -> ControlOutput:
        mode = Mode(int(action[MODE_DIM]))
        continuous = np.clip(action[:CONTINUOUS_DIMS], self._low, self._high)
        continuous = np.where(np.abs(continuous) <= self._zero_snap, 0.0, continuous)
        continuous = self.action_space.onto_robot(continuous)  # the model's units -> the robot's (calibration)
        previous = self._smoothing.continuous
        alpha = self.config.ema_alpha
        smoothed = continuous if previous is None else alpha * continuous + (1.0 - alpha) * previous
        gripper_value = float(continuous[GRIPPER_DIM])
        if gripper_value >= self.config.gripper_close_threshold:
            self._smoothing.gripper_closed = True
        elif gripper_value <= self.config.gripper_open_threshold:
            self._smoothing.gripper_closed = False
        gripper = 1.0 if self._smoothing.gripper_closed else 0.0

        arm_delta = np.zeros(6)
        base_twist = np.zeros(3)
        if mode == Mode.ARM:
            arm_delta = smoothed[ARM_DELTA_DIMS].copy()
            smoothed[BASE_DIMS] = 0.0  # the base stops; its filter restarts from rest
        elif mode == Mode.BASE:
            base_twist = smoothed[BASE_DIMS].copy()
            smoothed[ARM_DELTA_DIMS] = 0.0
        else:
            self._terminated = True
            smoothed[:] = 0.0
        self._smoothing.continuous = smoothed

        arm_delta[:3] = _clip_norm(arm_delta[:3], self.config.max_arm_translation_step)
        arm_delta[3:] = np.clip(arm_delta[3:], -self.config.max_arm_rotation_step, self.config.max_arm_rotation_step)
        base_twist[:2] = _clip_norm(base_twist[:2], self.config.max_base_linear_speed)
        base_twist[2] = float(np.clip(base_twist[2], -self.config.max_base_angular_speed,
                                      self.config.max_base_angular_speed))
        published = np.concatenate([arm_delta, [gripper], base_twist, [float(mode)]])
        assert published.shape == (NUM_ACTION_DIMS,)
        moving = self.enabled and mode != Mode.TERMINATE
        reason = "" if moving else ("episode terminated by the policy" if mode == Mode.TERMINATE
                                    else "disabled (dry run): computing actions, sending no motion")
        return ControlOutput(mode=mode, arm_delta=arm_delta, gripper=gripper, base_twist=base_twist,
                             tokens=np.asarray(tokens, dtype=np.int64), action=published, inference_ms=inference_ms,
                             moving=moving, reason=reason, image_stamp=stamp, new_inference=True)

    def _hold(self, reason: str, mode: Mode = Mode.HOLD, error: bool = False, image_stamp: object = None
              ) -> ControlOutput:
        if error:
            self.stats.errors += 1
            self.stats.last_error = reason
        self._last_output = None
        gripper = 1.0 if self._smoothing.gripper_closed else 0.0  # holding keeps a grasped object grasped
        action = np.zeros(NUM_ACTION_DIMS)
        action[GRIPPER_DIM] = gripper
        action[MODE_DIM] = float(mode)
        return ControlOutput(mode=mode, arm_delta=np.zeros(6), gripper=gripper, base_twist=np.zeros(3),
                             tokens=np.zeros(NUM_ACTION_DIMS, dtype=np.int64), action=action,
                             inference_ms=0.0, moving=False, reason=reason, image_stamp=image_stamp, error=error)


def _clip_norm(vector: np.ndarray, limit: float) -> np.ndarray:
    """Scale a vector down to ``limit`` keeping its direction (per-axis clipping would bend the path)."""
    norm = float(np.linalg.norm(vector))
    return vector * (limit / norm) if norm > limit else vector
