"""rt1_node: camera + instruction in, smoothed base Twist and arm commands out. A thin adapter over
`rt1_ros.runtime.controller.Controller`; see README "Topics", docs/parameters.md and docs/reliability.md.

This is the plain node: it loads the model and starts `rt1_ros.node.control_loop.ControlLoop` (the inputs, the
inference worker and watchdog threads, the outputs; its docstring explains the threads and the stale-frame rule) as
it starts, and keeps them until the process ends. `rt1_lifecycle_node` runs the same loop as a managed node
(docs/lifecycle.md).
"""
from __future__ import annotations

import sys
import time

from rclpy.node import Node
from std_srvs.srv import SetBool, Trigger

from rt1_ros.node.command_publishers import CommandPublishers
from rt1_ros.node.control_loop import ControlLoop, load_controller
from rt1_ros.node.node_process import run_node
from rt1_ros.node.parameter_declaration import declare_parameters, parameter_update
from rt1_ros.node.parameters import NODE_NAME, PARAMETER_SPECS, NodeConfig
from rt1_ros.runtime.controller import Controller


class Rt1Node(Node):
    def __init__(self, **node_kwargs) -> None:
        # First: a start-up failure below still ends in destroy_node, which stops the loop's threads if it started.
        self.loop: ControlLoop | None = None
        super().__init__(NODE_NAME, **node_kwargs)
        self.config = declare_parameters(self, NodeConfig())
        controller, self.policy_description = load_controller(self, self.config)
        self.loop = ControlLoop(self, self.config, controller, self.policy_description,
                                CommandPublishers(self, self.config))
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.loop.start()
        state = "ENABLED" if controller.enabled else "DRY RUN (call ~/enable to send motion)"
        self.get_logger().info(f"ready: {state}, {self.config.control_trigger} trigger, "
                               f"{self.config.control_rate_hz:g} Hz")

    # What tests, the bench and the closed loop read of the running policy.
    @property
    def controller(self) -> Controller:
        return self.loop.controller

    @property
    def frames_received(self) -> int:
        return self.loop.frames_received

    @property
    def frames_skipped(self) -> int:
        return self.loop.frames_skipped

    @property
    def frames_invalid(self) -> int:
        return self.loop.frames_invalid

    def control_step(self) -> None:
        self.loop.control_step()

    def publish_zero_motion(self) -> None:
        self.loop.publish_zero_motion()

    def stop_threads(self) -> None:
        if self.loop is not None:
            self.loop.stop_threads()

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.message = self.loop.set_enabled(request.data)
        response.success = True
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.message = self.loop.reset()
        response.success = True
        return response

    def _on_set_parameters(self, parameters):
        self.config, result = parameter_update(self.config, parameters, PARAMETER_SPECS)
        if result.successful:
            self.loop.apply_config(self.config)
        return result

    def destroy_node(self) -> None:
        self.stop_threads()
        super().destroy_node()


def _stop_motion(node: Rt1Node) -> None:
    node.loop.stop_motion()


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
