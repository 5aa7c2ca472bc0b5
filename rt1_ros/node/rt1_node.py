"""rt1_node: camera + instruction in, smoothed base Twist and arm commands out. A thin adapter over
`rt1_ros.runtime.controller.Controller`; see README "Topics" and "Parameters".

Threads: the camera callback only stores the newest message (its own callback group, so a long inference never
delays it); decoding happens for the frame actually used. Control, instructions, services and diagnostics share
one mutually exclusive group, so they never interleave with a step.
"""
from __future__ import annotations

import collections
import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped, Vector3
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from rt1_ros.msg import ArmCommand, RT1Action
from rt1_ros.node.node_process import run_node
from rt1_ros.node.parameter_declaration import declare_parameters
from rt1_ros.node.parameters import NODE_NAME, PARAMETER_SPECS, NodeConfig
from rt1_ros.runtime.controller import ControlOutput, Controller, Frame, InstructionError, Mode
from rt1_ros.runtime.image_decoding import ImageDecodeError, decode_compressed, decode_raw
from rt1_ros.runtime.policy_loading import UNTRAINED_BANNER, load_policy

RATE_WINDOW = 20  # control steps over which the achieved rate is reported


class Rt1Node(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        declare_parameters(self, PARAMETER_SPECS, NodeConfig.from_yaml())
        self.config = self._config_from_parameters()
        loaded = load_policy(self.config.policy_source())
        if not loaded.trained:
            self.get_logger().warning(UNTRAINED_BANNER)
        self.get_logger().info(f"policy: {loaded.description}")
        self.controller = Controller(loaded.policy, loaded.action_space, self.config.controller_config(),
                                     max_instruction_chars=self.config.max_instruction_chars)
        self.policy_description = loaded.description

        self._newest_image = None  # (message, received_at) — only the newest frame is kept
        self._image_lock = threading.Lock()
        self.frames_received = 0
        self.frames_skipped = 0  # replaced by a newer frame before a step used them
        self.frames_invalid = 0
        self._step_times: collections.deque[float] = collections.deque(maxlen=RATE_WINDOW)
        self._last_output: ControlOutput | None = None
        self._errors_reported = 0  # controller error count at the last diagnostics message

        control_group = MutuallyExclusiveCallbackGroup()
        image_group = MutuallyExclusiveCallbackGroup()
        self._create_publishers()
        self._create_subscriptions(control_group, image_group)
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=control_group)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=control_group)
        if self.config.control_trigger == "timer":
            self.create_timer(1.0 / self.config.control_rate_hz, self.control_step, callback_group=control_group)
        if self.config.command_rate_hz > 0:
            self.create_timer(1.0 / self.config.command_rate_hz, self._republish_velocity,
                              callback_group=control_group)
        self.create_timer(1.0 / self.config.diagnostics_rate_hz, self._publish_diagnostics,
                          callback_group=control_group)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        state = "ENABLED" if self.controller.enabled else "DRY RUN (call ~/enable to send motion)"
        self.get_logger().info(f"ready: {state}, {self.config.control_trigger} trigger, "
                               f"{self.config.control_rate_hz:g} Hz")

    # -- set-up ------------------------------------------------------------------------------------------------
    def _config_from_parameters(self) -> NodeConfig:
        return NodeConfig(**{name: self.get_parameter(name).value for name in PARAMETER_SPECS})

    def _create_publishers(self) -> None:
        base_type = TwistStamped if self.config.base_output == "twist_stamped" else Twist
        self._cmd_vel = self.create_publisher(base_type, "cmd_vel", 10)
        self._arm_command = None
        self._servo_twist = None
        if self.config.arm_output in ("arm_command", "both"):
            self._arm_command = self.create_publisher(ArmCommand, "arm_command", 10)
        if self.config.arm_output in ("servo_twist", "both"):
            self._servo_twist = self.create_publisher(TwistStamped, "servo_twist", 10)
        self._action = self.create_publisher(RT1Action, "rt1_action", 10)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _create_subscriptions(self, control_group, image_group) -> None:
        reliability = (ReliabilityPolicy.RELIABLE if self.config.image_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        image_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                               durability=DurabilityPolicy.VOLATILE)
        if self.config.image_transport == "compressed":
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, image_qos,
                                     callback_group=image_group)
        else:
            self.create_subscription(Image, "image", self._on_image, image_qos, callback_group=image_group)
        # Transient local: a node started after the instruction was sent still receives it.
        instruction_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                                     reliability=ReliabilityPolicy.RELIABLE,
                                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
        # Raw bytes: rclpy would silently turn invalid UTF-8 into U+FFFD and hand the policy a garbled task.
        self.create_subscription(String, "instruction", self._on_instruction, instruction_qos,
                                 callback_group=control_group, raw=True)

    # -- inputs ------------------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, message) -> None:
        with self._image_lock:
            if self._newest_image is not None:
                self.frames_skipped += 1
            self._newest_image = (message, self._now())
            self.frames_received += 1
        if self.config.control_trigger == "image":
            self.control_step()

    def _take_newest_frame(self) -> Frame | None:
        with self._image_lock:
            newest, self._newest_image = self._newest_image, None
        if newest is None:
            return None
        message, received_at = newest
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
        return Frame(rgb=rgb, stamp=message.header.stamp, received_at=received_at)

    def _on_instruction(self, serialized: bytes) -> None:
        try:
            text = self.controller.set_instruction(instruction_text(serialized))
        except InstructionError as exc:
            self.controller.stop_episode()
            self.get_logger().warning(f"instruction refused, robot holding: {exc}",
                                      throttle_duration_sec=self.config.log_throttle_s)
            self.publish_zero_motion()
            return
        self.get_logger().info(f"new instruction: '{text}' (history and smoothing reset)")

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.controller.set_enabled(request.data)
        if not request.data:
            self.publish_zero_motion()
        response.success = True
        response.message = "enabled: sending motion" if request.data else "disabled: dry run, no motion"
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.controller.reset()
        self.publish_zero_motion()
        response.success = True
        response.message = "history, smoothing and terminate state cleared"
        return response

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in PARAMETER_SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            candidate = NodeConfig(**{**{n: getattr(self.config, n) for n in PARAMETER_SPECS}, **changes})
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.config = candidate
        self.controller.update_config(candidate.controller_config())
        self.controller.max_instruction_chars = candidate.max_instruction_chars
        return SetParametersResult(successful=True)

    # -- the control step --------------------------------------------------------------------------------------
    def control_step(self) -> None:
        output = self.controller.step(self._now(), self._take_newest_frame())
        self._step_times.append(time.monotonic())
        if output.error:
            self.get_logger().error(output.reason, throttle_duration_sec=self.config.log_throttle_s)
        elif output.mode == Mode.HOLD and self.controller.instruction is not None:
            self.get_logger().warning(f"holding: {output.reason}", throttle_duration_sec=self.config.log_throttle_s)
        self._last_output = output
        self._publish_action(output)
        if self.controller.enabled:
            self._publish_motion(output)

    def _republish_velocity(self) -> None:
        """Velocity consumers (diff drive, MoveIt Servo) time out between 3 Hz steps: repeat the current one."""
        output = self._last_output
        if output is None or not self.controller.enabled:
            return
        if not output.moving or self.controller.is_stale(self._now()):
            output = None
        self._publish_velocities(output)

    # -- outputs -----------------------------------------------------------------------------------------------
    def publish_zero_motion(self) -> None:
        self._publish_velocities(None)
        if self._arm_command is not None:
            gripper = self._last_output.gripper if self._last_output is not None else 0.0
            self._arm_command.publish(self._arm_message(np.zeros(6), gripper, None))

    def _publish_motion(self, output: ControlOutput) -> None:
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
        message.arm = [float(v) for v in output.action[:7]]
        message.base = [float(v) for v in output.action[7:10]]
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


def instruction_text(serialized: bytes) -> str:
    """The text of a serialized std_msgs/String; InstructionError when it is malformed or not valid UTF-8."""
    try:
        message = deserialize_message(serialized, String)
    except Exception as exc:  # rclpy raises its own RMWError for truncated or corrupt CDR
        raise InstructionError(f"instruction message could not be deserialized ({len(serialized)} bytes): "
                               f"{exc}") from exc
    # rclpy decodes with replacement characters: valid UTF-8 re-encodes to the very bytes that were sent.
    if message.data.encode("utf-8") not in serialized:
        raise InstructionError("instruction is not valid UTF-8; invalid bytes would have become U+FFFD")
    return message.data


def _stop_motion(node: Rt1Node) -> None:
    # A step or republish still running on a worker thread could send motion after our zero: disable first.
    node.controller.set_enabled(False)


def _send_final_zero(node: Rt1Node) -> None:
    node.get_logger().info("shutting down: publishing zero motion")
    node.publish_zero_motion()
    time.sleep(0.2)  # let reliable DDS deliver the zero command before the participant goes away


def main(args: list[str] | None = None) -> int:
    return run_node(NODE_NAME, Rt1Node, num_threads=3, args=args, before_drain=_stop_motion,
                    after_drain=_send_final_zero)


if __name__ == "__main__":
    sys.exit(main())
