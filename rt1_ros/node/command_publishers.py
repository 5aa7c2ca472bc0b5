"""rt1_node's output topics and the messages on them: base twist, arm command or Servo twist, the full action, and
diagnostics. Shared by the plain node (created at start) and the lifecycle node (created at configure, as lifecycle
publishers, so nothing goes out while it is inactive)."""
from __future__ import annotations

from typing import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, TwistStamped, Vector3
from rclpy.node import Node

from rt1_ros.node import qos
from rt1_ros.configuration.action_layout import ARM_DIMS, BASE_DIMS
from rt1_ros.msg import ArmCommand, RT1Action
from rt1_ros.node.parameters import NodeConfig
from rt1_ros.runtime.controller import ControlOutput


class CommandPublishers:
    """The publishers of one configuration. ``config`` is replaced by the owner when a parameter changes (frame ids
    change at run time; the output types are read-only parameters, fixed here)."""

    def __init__(self, node: Node, config: NodeConfig, create_publisher: Callable | None = None) -> None:
        create = create_publisher or node.create_publisher
        self._node = node
        self.config = config
        base_type = TwistStamped if config.base_output == "twist_stamped" else Twist
        self.cmd_vel = create(base_type, "cmd_vel", qos.COMMANDS_AND_STATE)
        self.arm_command = None
        self.servo_twist = None
        if config.arm_output in ("arm_command", "both"):
            self.arm_command = create(ArmCommand, "arm_command", qos.COMMANDS_AND_STATE)
        if config.arm_output in ("servo_twist", "both"):
            self.servo_twist = create(TwistStamped, "servo_twist", qos.COMMANDS_AND_STATE)
        self.action = create(RT1Action, "rt1_action", qos.COMMANDS_AND_STATE)
        self.diagnostics = create(DiagnosticArray, "/diagnostics", qos.COMMANDS_AND_STATE)

    def all(self) -> list:
        return [p for p in (self.cmd_vel, self.arm_command, self.servo_twist, self.action, self.diagnostics)
                if p is not None]

    def _now(self):
        return self._node.get_clock().now().to_msg()

    def publish_velocities(self, output: ControlOutput | None) -> None:
        """Base twist and Servo twist of ``output``, or zero when None."""
        base = output.base_twist if output is not None else np.zeros(3)
        twist = Twist(linear=Vector3(x=float(base[0]), y=float(base[1])), angular=Vector3(z=float(base[2])))
        if self.config.base_output == "twist_stamped":
            stamped = TwistStamped(twist=twist)
            stamped.header.stamp = self._now()
            stamped.header.frame_id = self.config.base_frame_id
            self.cmd_vel.publish(stamped)
        else:
            self.cmd_vel.publish(twist)
        if self.servo_twist is not None:
            # Servo takes velocities: a per-step delta spread over one control period.
            velocity = (output.arm_delta if output is not None else np.zeros(6)) * self.config.control_rate_hz
            servo = TwistStamped()
            servo.header.stamp = self._now()
            servo.header.frame_id = self.config.arm_frame_id
            servo.twist.linear = Vector3(x=float(velocity[0]), y=float(velocity[1]), z=float(velocity[2]))
            servo.twist.angular = Vector3(x=float(velocity[3]), y=float(velocity[4]), z=float(velocity[5]))
            self.servo_twist.publish(servo)

    def publish_arm(self, arm_delta: np.ndarray, gripper: float, image_stamp) -> None:
        if self.arm_command is None:
            return
        message = ArmCommand()
        message.header.stamp = image_stamp if image_stamp is not None else self._now()
        message.header.frame_id = self.config.arm_frame_id
        message.translation = Vector3(x=float(arm_delta[0]), y=float(arm_delta[1]), z=float(arm_delta[2]))
        message.rotation = Vector3(x=float(arm_delta[3]), y=float(arm_delta[4]), z=float(arm_delta[5]))
        message.gripper = float(gripper)
        self.arm_command.publish(message)

    def publish_action(self, output: ControlOutput, enabled: bool, instruction: str) -> None:
        message = RT1Action()
        message.header.stamp = output.image_stamp if output.image_stamp is not None else self._now()
        message.header.frame_id = self.config.arm_frame_id
        message.tokens = [int(t) for t in np.clip(output.tokens, 0, 255)]
        message.arm = [float(v) for v in output.action[ARM_DIMS]]
        message.base = [float(v) for v in output.action[BASE_DIMS]]
        message.mode = int(output.mode)
        message.enabled = enabled
        message.inference_ms = float(output.inference_ms)
        message.instruction = instruction
        self.action.publish(message)

    def publish_diagnostics(self, array: DiagnosticArray) -> None:
        array.header.stamp = self._now()
        self.diagnostics.publish(array)
