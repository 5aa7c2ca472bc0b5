"""The running policy on a node's topics: inputs, the inference worker, the watchdog and the outputs of one
loaded model. One implementation for both ways of running rt1_node: the plain node starts one at start-up and keeps
it; the lifecycle node starts one at activate and closes it at deactivate (README "Topics", docs/reliability.md,
docs/lifecycle.md).

Threads (why: an executor callback that runs an inference delays every service, parameter update and watchdog
check behind it for as long as the inference takes):
  executor   every ROS callback; each returns within milliseconds. The camera callback stores the newest message,
             the control timer (or a new image, `control_trigger: image`) only wakes the inference worker, and
             instructions and `~/reset` are validated at once and queued for the worker.
  inference  one worker thread: applies the queued instruction/reset changes in order, then runs a control step on
             the newest frame and publishes its outputs. Policy state is only ever touched here (or by a caller
             holding the same lock).
  watchdog   a small thread of its own: when the frame behind the motion currently commanded becomes older than
             image_timeout_s it publishes zero motion, so a stalled step or a busy executor cannot leave a stale
             command standing.
A step's outputs are checked and published under the motion lock, which `~/enable false`, refused instructions,
`~/reset` and the watchdog also take before publishing zero: after the first three, no motion computed before them
goes out; after the watchdog's zero, only motion on a frame younger than image_timeout_s.

Frame age (the stale-frame rule): a frame's time is the earlier of the DDS source timestamp (when the camera's
writer sent it, on that host's system clock) and the middleware's reception timestamp (this host's system clock),
compared with the node's clock at the moment of acting. Camera header stamps are not used: camera clocks are often
not the robot's. Under `use_sim_time` a frame's time is its header stamp and the clock is sim time, since wall time
means nothing to a paused or faster-than-real-time simulation.

Sim time that goes back or stands still (`use_sim_time`; docs/reliability.md):
  back       a simulator that resets its world sends /clock back (to 0, typically) and goes on. The clock's jump
             callback (rclpy: any backward jump, or the clock switching between system and sim time) clears the frame
             history and the smoothing, drops the newest frame's time, sends zero motion at once and logs the jump;
             steps then hold until a frame stamped after the jump is acted on. Such a frame arrived after the jump,
             is stamped at or after the time jumped to, and is not stamped ahead of the node's clock by more than
             half the jump (at most image_timeout_s): an image stamped before the reset can still be on its way and
             arrive after the new /clock, stamped far ahead of it; a new one may lead the node's clock by the
             /clock messages still in flight.
  still      a paused simulator stops /clock, and with it every sim-time timer of the node (steps, the velocity
             republisher), so nothing would replace the last command; and a /clock that is lost while the world goes
             on would leave the robot driving blind. The watchdog, on the wall clock, sends zero motion once the
             node's clock has not moved for image_timeout_s while motion is commanded and no step is running (a
             lockstep simulator stands still while it waits for the step's answer), and logs it once; when sim time
             runs again, the next step on a new frame moves the robot again.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import ClockChange, JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from rt1_ros.node import qos
from rt1_ros.configuration.action_layout import Mode
from rt1_ros.node.command_publishers import CommandPublishers
from rt1_ros.node.image_message import image_fields
from rt1_ros.node.instruction_message import instruction_text
from rt1_ros.node.parameters import NodeConfig
from rt1_ros.node.ros_graph import NANOSECONDS, stamp_ns
from rt1_ros.runtime.controller import ControlOutput, Controller, Frame, InstructionError
from rt1_ros.inference.image_decoding import ImageDecodeError, decode_compressed, decode_raw
from rt1_ros.runtime.policy_loading import UNTRAINED_BANNER, load_policy

RATE_WINDOW = 20  # control steps over which the achieved rate is reported
WATCHDOG_MAX_PERIOD_S = 0.05  # the watchdog thread checks at least this often (and 4× per image_timeout_s)
THREAD_JOIN_TIMEOUT_S = 10.0  # a step in flight at shutdown: the longest inference we wait for
# Every backward jump of the node's clock is acted on (rclpy wants a negative, non-zero threshold), and a switch
# between system and sim time.
BACKWARD_JUMP = JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1), on_clock_change=True)


class _Received(NamedTuple):
    """The newest camera message, as the camera callback stored it."""

    message: object  # CompressedImage, or the ImageFields of a raw Image
    stamp: Time
    frame_time: float  # when the frame counts as taken, on the node's clock (module docstring: frame age)
    clock_epoch: int  # backward clock jumps the node had seen when it arrived
    clock_lead: float  # frame_time minus the node's clock on arrival (> 0: stamped ahead of the clock)
    generation: int  # instruction/reset changes queued before it arrived


@dataclass(frozen=True)
class _ClockJump:
    """A backward jump of the node's clock, from which steps hold until a frame after it is acted on."""

    to_s: float  # the node's clock just after the jump
    lead_s: float  # a frame stamped further ahead of the node's clock than this was stamped before the jump
    epoch: int

    def admits(self, received: _Received) -> bool:
        return (received.clock_epoch == self.epoch and received.frame_time >= self.to_s
                and received.clock_lead <= self.lead_s)


def load_controller(node: Node, config: NodeConfig) -> tuple[Controller, str]:
    """The policy the parameters name, loaded and logged (the untrained banner as a warning), under a controller ->
    (controller, what was loaded). The controller is then the only holder of the model, so a lifecycle node can
    release it by dropping the loop. Raises what load_policy raises (CheckpointError, ...)."""
    loaded = load_policy(config.policy)
    if not loaded.trained:
        node.get_logger().warning(UNTRAINED_BANNER)
    node.get_logger().info(f"policy: {loaded.description}")
    return Controller(loaded.policy, loaded.action_space, config.controller,
                      max_instruction_chars=config.max_instruction_chars), loaded.description


class ControlLoop:
    """``controller`` runs on ``node``'s inputs and publishes through ``outputs``. `start` creates the
    subscriptions and timers and starts the threads; `stop_motion` then `publish_zero_motion` then `close` end it."""

    def __init__(self, node: Node, config: NodeConfig, controller: Controller, policy_description: str,
                 outputs: CommandPublishers) -> None:
        self._node = node
        # Each warning is logged from a line of its own: rclpy throttles per call site, so a shared helper would
        # let one warning (holding, every step) silence another (instruction refused).
        self._logger = node.get_logger()
        self.config = config
        self.controller = controller
        self.policy_description = policy_description
        self.outputs = outputs
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake = threading.Condition()
        self._motion_event = threading.Event()  # set while motion is commanded: wakes the watchdog
        self._subscriptions: list = []  # destroyed by close(), with the timers
        self._timers: list = []

        self._newest_image: _Received | None = None  # only the newest is kept
        self._image_lock = threading.Lock()
        self.frames_received = 0
        self.frames_skipped = 0  # replaced by a newer frame before a step used them
        self.frames_invalid = 0
        self._step_times: collections.deque[float] = collections.deque(maxlen=RATE_WINDOW)
        self._last_output: ControlOutput | None = None
        self._errors_reported = 0  # controller error count at the last diagnostics message

        # Policy state belongs to whoever holds _policy_lock: the worker during a step. Callbacks queue changes.
        self._policy_lock = threading.Lock()
        self._ops_lock = threading.Lock()
        self._pending_ops: list[tuple[int, Callable[[], None]]] = []  # (generation it brought, change)
        self._generation = 0  # bumped by every queued instruction/reset: a step begun before one is discarded
        self._instruction_source_ns = -1  # source timestamp of the newest instruction taken (accepted or refused)
        # Held while deciding on and publishing motion; _motion_frame_at is the time of the frame behind the motion
        # now commanded (None when the last command was zero).
        self._motion_lock = threading.Lock()
        self._motion_frame_at: float | None = None
        self._step_requested = False
        # Sim time going back or standing still (module docstring). The jump state is guarded by _image_lock.
        self._jump_handle = None
        self._clock_epoch = 0
        self._clock_jump: _ClockJump | None = None
        self.clock_jumps = 0
        self._clock_seen = (0.0, 0.0)  # (node clock, time.monotonic()) when the watchdog last saw the clock move
        self._stepping = False  # a control step is running

    # -- start and end -----------------------------------------------------------------------------------------
    def start(self) -> None:
        node, config = self._node, self.config
        image_qos = qos.camera(config.image_reliability)
        image_group = MutuallyExclusiveCallbackGroup()
        if config.image_transport == "compressed":
            image = node.create_subscription(CompressedImage, "image/compressed", self._on_image, image_qos,
                                             callback_group=image_group)
        else:
            # Raw bytes: the node reads a frame's fields only when a step uses it (node/image_message.py).
            image = node.create_subscription(Image, "image", self._on_image, image_qos, callback_group=image_group,
                                             raw=True)
        # Latched: a node started after the instruction was sent still receives it. Raw bytes: rclpy would silently
        # turn invalid UTF-8 into U+FFFD and cut the text at a NUL.
        instruction = node.create_subscription(String, "instruction", self._on_instruction, qos.LATCHED, raw=True)
        self._subscriptions = [image, instruction]
        if config.control_trigger == "timer":
            self._timers.append(node.create_timer(1.0 / config.control_rate_hz, self._request_step))
        if config.command_rate_hz > 0:
            self._timers.append(node.create_timer(1.0 / config.command_rate_hz, self._republish_velocity))
        self._timers.append(node.create_timer(1.0 / config.diagnostics_rate_hz, self._publish_diagnostics))
        self._jump_handle = node.get_clock().create_jump_callback(BACKWARD_JUMP, post_callback=self._on_clock_jump)
        self._threads = [threading.Thread(target=self._inference_loop, name="rt1_inference", daemon=True),
                         threading.Thread(target=self._watchdog_loop, name="rt1_watchdog", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop_threads(self) -> None:
        """End the inference worker (after the step in flight) and the watchdog; no step runs after this."""
        self._stopping.set()
        self._motion_event.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=THREAD_JOIN_TIMEOUT_S)

    def stop_motion(self) -> None:
        """Disable, then end the threads: a step still running on the worker could otherwise send motion after the
        zero command that follows."""
        with self._motion_lock:
            self.controller.set_enabled(False)
        self.stop_threads()

    def close(self) -> None:
        """Destroy the subscriptions and timers (from an executor callback, or with the executor stopped)."""
        self.stop_threads()
        if self._jump_handle is not None:
            self._jump_handle.unregister()
            self._jump_handle = None
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        for timer in self._timers:
            self._node.destroy_timer(timer)
        self._subscriptions, self._timers = [], []

    def apply_config(self, config: NodeConfig) -> None:
        """A parameter update already checked against the whole config."""
        self.config = config
        self.outputs.config = config
        self.controller.update_config(config.controller)
        self.controller.max_instruction_chars = config.max_instruction_chars

    # -- clocks ------------------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._node.get_clock().now().nanoseconds / NANOSECONDS

    def _sim_time(self) -> bool:
        return bool(self._node.get_parameter("use_sim_time").value)

    def _frame_time(self, stamp: Time, info) -> float:
        """When the frame counts as taken, on the node's clock (see the module docstring: frame age)."""
        if self._sim_time():
            return stamp_ns(stamp) / NANOSECONDS
        # The earlier of the writer's source timestamp and the middleware's reception: a frame written while this
        # process was frozen is received after it resumes, but was written long before.
        times = [info.get(key, 0) for key in ("source_timestamp", "received_timestamp")] if info else []
        times = [t for t in times if t > 0]
        return min(times) / NANOSECONDS if times else self._now()

    # -- inputs ------------------------------------------------------------------------------------------------
    def _on_image(self, message, info) -> None:
        """A CompressedImage, or the serialized bytes of an Image (subscribed raw: only the fields are read here,
        a few microseconds; the pixels are converted only if a step takes this frame)."""
        if isinstance(message, bytes):
            try:
                fields = image_fields(message)
            except ImageDecodeError as exc:
                self._count_invalid_frame()
                self._logger.warning(f"dropping camera message: {exc}",
                                     throttle_duration_sec=self.config.log_throttle_s)
                return
            stamp = Time(sec=fields.stamp_sec, nanosec=fields.stamp_nanosec)
            message = fields
        else:
            stamp = message.header.stamp
        frame_time = self._frame_time(stamp, info)
        epoch = self._clock_epoch  # before the clock is read: a jump in between leaves the frame before it
        clock_lead = frame_time - self._now()
        with self._ops_lock:
            generation = self._generation
        with self._image_lock:
            if self._newest_image is not None:
                self.frames_skipped += 1
            self._newest_image = _Received(message, stamp, frame_time, epoch, clock_lead, generation)
            self.frames_received += 1
        if self.config.control_trigger == "image":
            self._request_step()

    def _count_invalid_frame(self) -> None:
        with self._image_lock:  # the executor (unreadable messages) and the worker (undecodable frames) both count
            self.frames_invalid += 1

    def _decode(self, newest: _Received) -> Frame | None:
        message, stamp, frame_time = newest.message, newest.stamp, newest.frame_time
        try:
            if isinstance(message, CompressedImage):
                rgb = decode_compressed(message.format, message.data, self.config.max_image_pixels)
            else:
                rgb = decode_raw(message.height, message.width, message.encoding, message.is_bigendian,
                                 message.step, message.data, self.config.max_image_pixels)
        except ImageDecodeError as exc:
            self._count_invalid_frame()
            self._logger.warning(f"dropping camera frame: {exc}", throttle_duration_sec=self.config.log_throttle_s)
            return None
        return Frame(rgb=rgb, stamp=stamp, received_at=frame_time)

    def _on_instruction(self, serialized: bytes, info) -> None:
        source_ns = int(info.get("source_timestamp", 0)) if info else 0
        if source_ns and source_ns < self._instruction_source_ns:
            # Two transient-local publishers reach a late-joining node in either order: the newest one wins.
            older_s = (self._instruction_source_ns - source_ns) / NANOSECONDS
            self._logger.warning(f"instruction ignored: written {older_s:.3f} s before the one in force "
                                 "(newest source timestamp wins)", throttle_duration_sec=self.config.log_throttle_s)
            return
        self._instruction_source_ns = max(self._instruction_source_ns, source_ns)
        try:
            text = self.controller.validate_instruction(instruction_text(serialized))
        except InstructionError as exc:
            self._submit(self.controller.stop_episode)
            self._logger.warning(f"instruction refused, robot holding: {exc}",
                                 throttle_duration_sec=self.config.log_throttle_s)
            self.publish_zero_motion()
            return

        def apply() -> None:
            try:
                self.controller.set_instruction(text)
            except InstructionError as exc:  # max_instruction_chars lowered since the check
                self._logger.warning(f"instruction refused, robot holding: {exc}",
                                     throttle_duration_sec=self.config.log_throttle_s)
                return
            self._logger.info(f"new instruction: '{text}' (history and smoothing reset)")

        self._submit(apply)

    def set_enabled(self, enabled: bool) -> str:
        """`~/enable`: motion on, or off with a zero command at once; returns the service's message."""
        if enabled:
            self.controller.set_enabled(True)
        else:
            with self._motion_lock:
                self.controller.set_enabled(False)
                self._publish_zero_locked()
        message = "enabled: sending motion" if enabled else "disabled: dry run, no motion"
        self._logger.info(message)
        return message

    def reset(self) -> str:
        """`~/reset`: clear history, smoothing and terminate state (on the worker) and hold; returns the message."""
        self._submit(self.controller.reset)
        self.publish_zero_motion()
        return "history, smoothing and terminate state cleared"

    def _on_clock_jump(self, jump: TimeJump) -> None:
        """The node's clock jumped (called by rclpy as the new time is set, on the thread that set it)."""
        switched = jump.clock_change in (ClockChange.ROS_TIME_ACTIVATED, ClockChange.ROS_TIME_DEACTIVATED)
        delta_s = jump.delta.nanoseconds / NANOSECONDS
        if delta_s >= 0 and not switched:
            return
        now = self._now()
        # State first, then the queued reset, then zero: a step that begins in between sees the jump and holds; one
        # already running is discarded (the queued reset bumps the generation).
        with self._image_lock:
            self._clock_epoch += 1
            self.clock_jumps += 1
            self._clock_jump = _ClockJump(to_s=now, lead_s=min(self.config.controller.image_timeout_s,
                                                               abs(delta_s) / 2), epoch=self._clock_epoch)
            count = self.clock_jumps
        self._submit(self.controller.clock_jumped_back)
        self.publish_zero_motion()
        what = ("the node's clock switched between system and sim time" if switched
                else f"the clock jumped back by {-delta_s:.3f} s, to {now:.3f} s (a simulator reset?)")
        self._logger.warning(f"{what}: frame history and smoothing cleared, zero motion until a frame stamped after "
                             f"the jump is acted on ({count} jump(s) back so far)",
                             throttle_duration_sec=self.config.log_throttle_s)

    # -- the inference worker ----------------------------------------------------------------------------------
    def _submit(self, operation: Callable[[], None]) -> None:
        """Queue a change of policy state for the worker, which applies queued changes in order before its next
        step; a step already running when it is queued is discarded."""
        with self._ops_lock:
            self._generation += 1
            self._pending_ops.append((self._generation, operation))
        with self._wake:
            self._wake.notify()

    def _apply_pending_ops(self, up_to: int | None = None) -> None:
        """Apply the queued changes in order: all of them, or those queued before generation ``up_to`` ended."""
        with self._ops_lock:
            if up_to is None:
                operations, self._pending_ops = self._pending_ops, []
            else:
                operations = [op for op in self._pending_ops if op[0] <= up_to]
                self._pending_ops = [op for op in self._pending_ops if op[0] > up_to]
        for _, operation in operations:
            operation()

    def _request_step(self) -> None:
        with self._wake:
            self._step_requested = True
            self._wake.notify()

    def _inference_loop(self) -> None:
        while True:
            with self._wake:
                while not (self._step_requested or self._pending_ops or self._stopping.is_set()):
                    self._wake.wait()
                if self._stopping.is_set():
                    return
                step, self._step_requested = self._step_requested, False
            try:
                if step:
                    self.control_step()
                else:
                    with self._policy_lock:
                        self._apply_pending_ops()
            except Exception as exc:  # the worker must survive anything; a failure here holds the robot
                if self._stopping.is_set():
                    return
                self._logger.error(f"control step failed: {type(exc).__name__}: {exc}",
                                              throttle_duration_sec=self.config.log_throttle_s)
                self.publish_zero_motion()

    def _watchdog_loop(self) -> None:
        # Asleep while nothing moves (no cost to an idle node); while motion is commanded, checks every
        # WATCHDOG_MAX_PERIOD_S (or a quarter of image_timeout_s), independently of the executor and the worker.
        while not self._stopping.is_set():
            if not self._motion_event.wait(timeout=1.0) or self._stopping.is_set():
                continue
            with self._motion_lock:
                if self._motion_frame_at is None:
                    self._motion_event.clear()
                    continue
                now, wall = self._now(), time.monotonic()
                if now != self._clock_seen[0]:
                    self._clock_seen = (now, wall)
                age = now - self._motion_frame_at
                standing_s = wall - self._clock_seen[1]  # > 0 only under sim time: the system clock always moves
                stale = age > self.config.controller.image_timeout_s
                stood_still = standing_s > self.config.controller.image_timeout_s and not self._stepping
                if stale or stood_still:
                    self._publish_zero_locked()
            if stale:
                self._logger.warning(f"watchdog: the frame behind the current motion is {age:.2f} s old (no newer "
                                     "step acted in time): zero motion",
                                     throttle_duration_sec=self.config.log_throttle_s)
            elif stood_still:
                self._logger.warning(f"watchdog: sim time has stood still at {now:.3f} s for {standing_s:.2f} s of "
                                     "wall time (simulator paused, or /clock lost): zero motion until a step acts "
                                     "on a new frame", throttle_duration_sec=self.config.log_throttle_s)
            self._stopping.wait(min(WATCHDOG_MAX_PERIOD_S, self.config.controller.image_timeout_s / 4))

    # -- the control step --------------------------------------------------------------------------------------
    def control_step(self) -> None:
        """One policy step on the newest frame, then its outputs; runs on the worker (callable from any thread)."""
        with self._policy_lock:
            self._stepping = True
            try:
                self._step_locked()
            finally:
                self._stepping = False

    def _step_locked(self) -> None:
        """control_step's body, with _policy_lock held."""
        with self._image_lock:
            newest, self._newest_image = self._newest_image, None
        if newest is not None:
            # A frame is acted on only under the task in force when it arrived: an instruction or reset queued
            # after it (in a simulator, possibly a reset of the world it shows) gets the frame a hold, under the
            # instruction it arrived for (a lockstep simulator that announced a new instruction asks again).
            self._apply_pending_ops(up_to=newest.generation)
            with self._ops_lock:
                superseded = self._generation != newest.generation
            if superseded:
                output = self.controller.hold_step("an instruction or reset arrived after this frame",
                                                   image_stamp=newest.stamp)
                with self._motion_lock:
                    self._publish_output(output)
                self._apply_pending_ops()
                return
        else:
            self._apply_pending_ops()
        generation = self._generation
        with self._image_lock:
            jump = self._clock_jump
        if jump is not None and (newest is None or not jump.admits(newest)):
            output = self.controller.hold_step("the clock jumped back: waiting for a frame stamped after the jump",
                                               image_stamp=newest.stamp if newest is not None else None)
        else:
            frame = self._decode(newest) if newest is not None else None
            if jump is not None and frame is not None:
                with self._image_lock:
                    if self._clock_jump is jump:
                        self._clock_jump = None
            output = self.controller.step(self._now(), frame)
        with self._motion_lock:
            if generation != self._generation:
                # An instruction or reset arrived during the step: its output answers a superseded task. The frame is
                # answered with a hold, under the instruction it was taken for (a lockstep simulator waits for an
                # answer to every image, and asks again for one answered under another instruction than its
                # episode's), and never acted on under the new task: it may show the world before a reset.
                if newest is not None:
                    output = self.controller.hold_step("an instruction or reset arrived during the step",
                                                       image_stamp=newest.stamp)
                    self._publish_output(output)
                return
            if output.moving and self.controller.is_stale(self._now()):
                output = self.controller.expire(self._now(), output.image_stamp)
            self._publish_output(output)

    def _publish_output(self, output: ControlOutput) -> None:
        """A step's rt1_action and, when enabled, its motion; caller holds the motion lock."""
        self._step_times.append(time.monotonic())
        if output.error:
            self._logger.error(output.reason, throttle_duration_sec=self.config.log_throttle_s)
        elif output.mode == Mode.HOLD and self.controller.instruction is not None:
            self._logger.warning(f"holding: {output.reason}", throttle_duration_sec=self.config.log_throttle_s)
        self._last_output = output
        self.outputs.publish_action(output, self.controller.enabled, self.controller.instruction or "")
        if self.controller.enabled:
            self._publish_motion(output)

    def _republish_velocity(self) -> None:
        """Velocity consumers (diff drive, MoveIt Servo) time out between 3 Hz steps: repeat the current one."""
        with self._motion_lock:
            output = self._last_output
            if output is None or not self.controller.enabled:
                return
            if not output.moving or self._motion_frame_at is None:
                output = None
            self.outputs.publish_velocities(output)

    # -- outputs -----------------------------------------------------------------------------------------------
    def publish_zero_motion(self) -> None:
        with self._motion_lock:
            self._publish_zero_locked()

    def _publish_zero_locked(self) -> None:
        self._motion_frame_at = None
        self._motion_event.clear()
        self.outputs.publish_velocities(None)
        gripper = self._last_output.gripper if self._last_output is not None else 0.0
        self.outputs.publish_arm(np.zeros(6), gripper, None)

    def _publish_motion(self, output: ControlOutput) -> None:
        self._motion_frame_at = self.controller.last_frame_at if output.moving else None
        if output.moving:
            self._clock_seen = (self._now(), time.monotonic())
            self._motion_event.set()
        self.outputs.publish_velocities(output if output.moving else None)
        arm_delta = output.arm_delta if output.moving else np.zeros(6)
        self.outputs.publish_arm(arm_delta, output.gripper, output.image_stamp)

    def _publish_diagnostics(self) -> None:
        output = self._last_output
        times = self._step_times
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        # The namespaced name: two robots (or arms) each running rt1_node must be told apart on /diagnostics.
        status = DiagnosticStatus(name=f"{self._node.get_fully_qualified_name()}: RT-1 policy",
                                  hardware_id=self.policy_description)
        stats = self.controller.stats
        # An inference failure between two reports must still show as ERROR, or a 1 Hz monitor misses it.
        new_errors = stats.errors - self._errors_reported
        self._errors_reported = stats.errors
        if output is None:
            status.level, status.message = DiagnosticStatus.WARN, "no control step yet"
        elif output.error:
            status.level, status.message = DiagnosticStatus.ERROR, output.reason
        elif new_errors:
            status.level = DiagnosticStatus.ERROR
            status.message = f"{new_errors} failed step(s) since the last report, recovered: {stats.last_error}"
        elif output.mode == Mode.HOLD:
            status.level, status.message = DiagnosticStatus.WARN, output.reason
        else:
            status.level, status.message = DiagnosticStatus.OK, output.reason or "running"
        values = {
            "enabled": self.controller.enabled, "instruction": self.controller.instruction or "",
            "mode": Mode(output.mode).name if output is not None else "", "control_rate_hz": round(rate, 3),
            "inference_ms": round(stats.last_inference_ms, 2), "steps": stats.steps, "errors": stats.errors,
            "last_error": stats.last_error, "frames_received": self.frames_received,
            "frames_skipped": self.frames_skipped, "frames_invalid": self.frames_invalid,
            "clock_jumps_back": self.clock_jumps,
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        self.outputs.publish_diagnostics(DiagnosticArray(status=[status]))
