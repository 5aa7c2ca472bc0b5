"""rt1_node: camera + instruction in, smoothed base Twist and arm commands out. A thin adapter over
`rt1_ros.runtime.controller.Controller`; see README "Topics", "Parameters" and "Reliability".

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
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped, Vector3
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from rt1_ros import qos
from rt1_ros.action_layout import ARM_DIMS, BASE_DIMS, Mode
from rt1_ros.msg import ArmCommand, RT1Action
from rt1_ros.node.instruction_message import instruction_text
from rt1_ros.node.node_process import run_node
from rt1_ros.node.parameter_declaration import declare_parameters
from rt1_ros.node.parameters import NODE_NAME, PARAMETER_SPECS, NodeConfig
from rt1_ros.ros_graph import NANOSECONDS, stamp_ns
from rt1_ros.runtime.controller import ControlOutput, Controller, Frame, InstructionError
from rt1_ros.runtime.image_decoding import ImageDecodeError, decode_compressed, decode_raw
from rt1_ros.runtime.policy_loading import UNTRAINED_BANNER, load_policy

RATE_WINDOW = 20  # control steps over which the achieved rate is reported
WATCHDOG_MAX_PERIOD_S = 0.05  # the watchdog thread checks at least this often (and 4× per image_timeout_s)
THREAD_JOIN_TIMEOUT_S = 10.0  # a step in flight at shutdown: the longest inference we wait for


class Rt1Node(Node):
    def __init__(self, **node_kwargs) -> None:
        # First: a start-up failure below still ends in destroy_node, which stops these.
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake = threading.Condition()
        self._motion_event = threading.Event()  # set while motion is commanded: wakes the watchdog
        super().__init__(NODE_NAME, **node_kwargs)
        self.config = declare_parameters(self, NodeConfig())
        loaded = load_policy(self.config.policy)
        if not loaded.trained:
            self.get_logger().warning(UNTRAINED_BANNER)
        self.get_logger().info(f"policy: {loaded.description}")
        self.controller = Controller(loaded.policy, loaded.action_space, self.config.controller,
                                     max_instruction_chars=self.config.max_instruction_chars)
        self.policy_description = loaded.description

        self._newest_image = None  # (message, frame time on the watchdog clock) — only the newest frame is kept
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
        self._pending_ops: list[Callable[[], None]] = []
        self._generation = 0  # bumped by every queued instruction/reset: a step begun before one is discarded
        self._instruction_source_ns = -1  # source timestamp of the newest instruction taken (accepted or refused)
        # Held while deciding on and publishing motion; _motion_frame_at is the time of the frame behind the motion
        # now commanded (None when the last command was zero).
        self._motion_lock = threading.Lock()
        self._motion_frame_at: float | None = None
        self._step_requested = False

        image_group = MutuallyExclusiveCallbackGroup()
        self._create_publishers()
        self._create_subscriptions(image_group)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_service(Trigger, "~/reset", self._on_reset)
        if self.config.control_trigger == "timer":
            self.create_timer(1.0 / self.config.control_rate_hz, self._request_step)
        if self.config.command_rate_hz > 0:
            self.create_timer(1.0 / self.config.command_rate_hz, self._republish_velocity)
        self.create_timer(1.0 / self.config.diagnostics_rate_hz, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._threads = [threading.Thread(target=self._inference_loop, name="rt1_inference", daemon=True),
                         threading.Thread(target=self._watchdog_loop, name="rt1_watchdog", daemon=True)]
        for thread in self._threads:
            thread.start()
        state = "ENABLED" if self.controller.enabled else "DRY RUN (call ~/enable to send motion)"
        self.get_logger().info(f"ready: {state}, {self.config.control_trigger} trigger, "
                               f"{self.config.control_rate_hz:g} Hz")

    # -- set-up ------------------------------------------------------------------------------------------------
    def _create_publishers(self) -> None:
        base_type = TwistStamped if self.config.base_output == "twist_stamped" else Twist
        self._cmd_vel = self.create_publisher(base_type, "cmd_vel", qos.COMMANDS_AND_STATE)
        self._arm_command = None
        self._servo_twist = None
        if self.config.arm_output in ("arm_command", "both"):
            self._arm_command = self.create_publisher(ArmCommand, "arm_command", qos.COMMANDS_AND_STATE)
        if self.config.arm_output in ("servo_twist", "both"):
            self._servo_twist = self.create_publisher(TwistStamped, "servo_twist", qos.COMMANDS_AND_STATE)
        self._action = self.create_publisher(RT1Action, "rt1_action", qos.COMMANDS_AND_STATE)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", qos.COMMANDS_AND_STATE)

    def _create_subscriptions(self, image_group) -> None:
        image_qos = qos.camera(self.config.image_reliability)
        if self.config.image_transport == "compressed":
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, image_qos,
                                     callback_group=image_group)
        else:
            self.create_subscription(Image, "image", self._on_image, image_qos, callback_group=image_group)
        # Latched: a node started after the instruction was sent still receives it. Raw bytes: rclpy would silently
        # turn invalid UTF-8 into U+FFFD and cut the text at a NUL.
        self.create_subscription(String, "instruction", self._on_instruction, qos.LATCHED, raw=True)

    # -- clocks ------------------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / NANOSECONDS

    def _sim_time(self) -> bool:
        return bool(self.get_parameter("use_sim_time").value)

    def _frame_time(self, message, info) -> float:
        """When the frame counts as taken, on the node's clock (see the module docstring: frame age)."""
        if self._sim_time():
            return stamp_ns(message.header.stamp) / NANOSECONDS
        # The earlier of the writer's source timestamp and the middleware's reception: a frame written while this
        # process was frozen is received after it resumes, but was written long before.
        times = [info.get(key, 0) for key in ("source_timestamp", "received_timestamp")] if info else []
        times = [t for t in times if t > 0]
        return min(times) / NANOSECONDS if times else self._now()

    # -- inputs ------------------------------------------------------------------------------------------------
    def _on_image(self, message, info) -> None:
        frame_time = self._frame_time(message, info)
        with self._image_lock:
            if self._newest_image is not None:
                self.frames_skipped += 1
            self._newest_image = (message, frame_time)
            self.frames_received += 1
        if self.config.control_trigger == "image":
            self._request_step()

    def _decode(self, newest) -> Frame | None:
        message, frame_time = newest
        try:
            if isinstance(message, CompressedImage):
                rgb = decode_compressed(message.format, message.data, self.config.max_image_pixels)
            else:
                rgb = decode_raw(message.height, message.width, message.encoding, bool(message.is_bigendian),
                                 message.step, message.data, self.config.max_image_pixels)
        except ImageDecodeError as exc:
            self.frames_invalid += 1
            self.get_logger().warning(f"dropping camera frame: {exc}", throttle_duration_sec=self.config.log_throttle_s)
            return None
        return Frame(rgb=rgb, stamp=message.header.stamp, received_at=frame_time)

    def _on_instruction(self, serialized: bytes, info) -> None:
        source_ns = int(info.get("source_timestamp", 0)) if info else 0
        if source_ns and source_ns < self._instruction_source_ns:
            # Two transient-local publishers reach a late-joining node in either order: the newest one wins.
            older_s = (self._instruction_source_ns - source_ns) / NANOSECONDS
            self.get_logger().warning(f"instruction ignored: written {older_s:.3f} s before the one in force "
                                      "(newest source timestamp wins)",
                                      throttle_duration_sec=self.config.log_throttle_s)
            return
        self._instruction_source_ns = max(self._instruction_source_ns, source_ns)
        try:
            text = self.controller.validate_instruction(instruction_text(serialized))
        except InstructionError as exc:
            self._submit(self.controller.stop_episode)
            self.get_logger().warning(f"instruction refused, robot holding: {exc}",
                                      throttle_duration_sec=self.config.log_throttle_s)
            self.publish_zero_motion()
            return

        def apply() -> None:
            try:
                self.controller.set_instruction(text)
            except InstructionError as exc:  # max_instruction_chars lowered since the check
                self.get_logger().warning(f"instruction refused, robot holding: {exc}",
                                          throttle_duration_sec=self.config.log_throttle_s)
                return
            self.get_logger().info(f"new instruction: '{text}' (history and smoothing reset)")

        self._submit(apply)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            self.controller.set_enabled(True)
        else:
            with self._motion_lock:
                self.controller.set_enabled(False)
                self._publish_zero_locked()
        response.success = True
        response.message = "enabled: sending motion" if request.data else "disabled: dry run, no motion"
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._submit(self.controller.reset)
        self.publish_zero_motion()
        response.success = True
        response.message = "history, smoothing and terminate state cleared"
        return response

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in PARAMETER_SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            candidate = self.config.with_parameters(changes)
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.config = candidate
        self.controller.update_config(candidate.controller)
        self.controller.max_instruction_chars = candidate.max_instruction_chars
        return SetParametersResult(successful=True)

    # -- the inference worker ----------------------------------------------------------------------------------
    def _submit(self, operation: Callable[[], None]) -> None:
        """Queue a change of policy state for the worker, which applies queued changes in order before its next
        step; a step already running when it is queued is discarded."""
        with self._ops_lock:
            self._pending_ops.append(operation)
            self._generation += 1
        with self._wake:
            self._wake.notify()

    def _apply_pending_ops(self) -> None:
        with self._ops_lock:
            operations, self._pending_ops = self._pending_ops, []
        for operation in operations:
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
                self.get_logger().error(f"control step failed: {type(exc).__name__}: {exc}",
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
                age = self._now() - self._motion_frame_at
                stale = age > self.config.controller.image_timeout_s
                if stale:
                    self._publish_zero_locked()
            if stale:
                self.get_logger().warning(f"watchdog: the frame behind the current motion is {age:.2f} s old (no "
                                          "newer step acted in time): zero motion",
                                          throttle_duration_sec=self.config.log_throttle_s)
            self._stopping.wait(min(WATCHDOG_MAX_PERIOD_S, self.config.controller.image_timeout_s / 4))

    # -- the control step --------------------------------------------------------------------------------------
    def control_step(self) -> None:
        """One policy step on the newest frame, then its outputs; runs on the worker (callable from any thread)."""
        with self._policy_lock:
            self._apply_pending_ops()
            generation = self._generation
            with self._image_lock:
                newest, self._newest_image = self._newest_image, None
            output = self.controller.step(self._now(), self._decode(newest) if newest is not None else None)
            with self._motion_lock:
                if generation != self._generation:
                    # An instruction or reset arrived during the step: its output answers a superseded task. The
                    # frame goes back unless a newer one came, so a lockstep simulator still gets its answer.
                    with self._image_lock:
                        if newest is not None and self._newest_image is None:
                            self._newest_image = newest
                            self._request_step()
                    return
                if output.moving and self.controller.is_stale(self._now()):
                    output = self.controller.expire(self._now(), output.image_stamp)
                self._step_times.append(time.monotonic())
                if output.error:
                    self.get_logger().error(output.reason, throttle_duration_sec=self.config.log_throttle_s)
                elif output.mode == Mode.HOLD and self.controller.instruction is not None:
                    self.get_logger().warning(f"holding: {output.reason}",
                                              throttle_duration_sec=self.config.log_throttle_s)
                self._last_output = output
                self._publish_action(output)
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
            self._publish_velocities(output)

    def stop_threads(self) -> None:
        """End the inference worker (after the step in flight) and the watchdog; no step runs after this."""
        self._stopping.set()
        self._motion_event.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=THREAD_JOIN_TIMEOUT_S)

    def destroy_node(self) -> None:
        self.stop_threads()
        super().destroy_node()

    # -- outputs -----------------------------------------------------------------------------------------------
    def publish_zero_motion(self) -> None:
        with self._motion_lock:
            self._publish_zero_locked()

    def _publish_zero_locked(self) -> None:
        self._motion_frame_at = None
        self._motion_event.clear()
        self._publish_velocities(None)
        if self._arm_command is not None:
            gripper = self._last_output.gripper if self._last_output is not None else 0.0
            self._arm_command.publish(self._arm_message(np.zeros(6), gripper, None))

    def _publish_motion(self, output: ControlOutput) -> None:
        self._motion_frame_at = self.controller.last_frame_at if output.moving else None
        if output.moving:
            self._motion_event.set()
        self._publish_velocities(output if output.moving else None)
        if self._arm_command is not None:
            arm_delta = output.arm_delta if output.moving else np.zeros(6)
            self._arm_command.publish(self._arm_message(arm_delta, output.gripper, output.image_stamp))

    def _publish_velocities(self, output: ControlOutput | None) -> None:
        """Base twist and Servo twist of ``output``, or zero when None."""
        base = output.base_twist if output is not None else np.zeros(3)
        twist = Twist(linear=Vector3(x=float(base[0]), y=float(base[1])), angular=Vector3(z=float(base[2])))
        if self.config.base_output == "twist_stamped":
            stamped = TwistStamped(twist=twist)
            stamped.header.stamp = self.get_clock().now().to_msg()
            stamped.header.frame_id = self.config.base_frame_id
            self._cmd_vel.publish(stamped)
        else:
            self._cmd_vel.publish(twist)
        if self._servo_twist is not None:
            # Servo takes velocities: a per-step delta spread over one control period.
            velocity = (output.arm_delta if output is not None else np.zeros(6)) * self.config.control_rate_hz
            servo = TwistStamped()
            servo.header.stamp = self.get_clock().now().to_msg()
            servo.header.frame_id = self.config.arm_frame_id
            servo.twist.linear = Vector3(x=float(velocity[0]), y=float(velocity[1]), z=float(velocity[2]))
            servo.twist.angular = Vector3(x=float(velocity[3]), y=float(velocity[4]), z=float(velocity[5]))
            self._servo_twist.publish(servo)

    def _arm_message(self, arm_delta: np.ndarray, gripper: float, image_stamp) -> ArmCommand:
        message = ArmCommand()
        message.header.stamp = image_stamp if image_stamp is not None else self.get_clock().now().to_msg()
        message.header.frame_id = self.config.arm_frame_id
        message.translation = Vector3(x=float(arm_delta[0]), y=float(arm_delta[1]), z=float(arm_delta[2]))
        message.rotation = Vector3(x=float(arm_delta[3]), y=float(arm_delta[4]), z=float(arm_delta[5]))
        message.gripper = float(gripper)
        return message

    def _publish_action(self, output: ControlOutput) -> None:
        message = RT1Action()
        message.header.stamp = (output.image_stamp if output.image_stamp is not None
                                else self.get_clock().now().to_msg())
        message.header.frame_id = self.config.arm_frame_id
        message.tokens = [int(t) for t in np.clip(output.tokens, 0, 255)]
        message.arm = [float(v) for v in output.action[ARM_DIMS]]
        message.base = [float(v) for v in output.action[BASE_DIMS]]
        message.mode = int(output.mode)
        message.enabled = self.controller.enabled
        message.inference_ms = float(output.inference_ms)
        message.instruction = self.controller.instruction or ""
        self._action.publish(message)

    def _publish_diagnostics(self) -> None:
        output = self._last_output
        times = self._step_times
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        # The namespaced name: two robots (or arms) each running rt1_node must be told apart on /diagnostics.
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: RT-1 policy",
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
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)


def _stop_motion(node: Rt1Node) -> None:
    # A step still running on the worker could send motion after our zero: disable first, under the motion lock.
    with node._motion_lock:
        node.controller.set_enabled(False)
    node.stop_threads()


def _send_final_zero(node: Rt1Node) -> None:
    node.get_logger().info("shutting down: publishing zero motion")
    node.publish_zero_motion()
    time.sleep(0.2)  # let reliable DDS deliver the zero command before the participant goes away


def main(args: list[str] | None = None) -> int:
    # One executor thread: no callback blocks for long (inference has its own thread), and rclpy's
    # MultiThreadedExecutor spins busily whenever an entity is ready but its callback group is busy.
    return run_node(NODE_NAME, Rt1Node, num_threads=1, args=args, before_drain=_stop_motion,
                    after_drain=_send_final_zero)


if __name__ == "__main__":
    sys.exit(main())
