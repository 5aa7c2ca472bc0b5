"""rt1_node as a managed (lifecycle) node: the same control loop as the plain node (`ControlLoop`, same topics,
services, parameters and safety rules), started and stopped by lifecycle transitions (docs/lifecycle.md):

  configure   read the parameters (declared at construction, so they can be set before), create the output
              publishers (lifecycle publishers: silent unless active) and the `~/enable` and `~/reset` services.
  activate    load the model, subscribe to camera and instruction, start the timers and the worker and watchdog
              threads. Each activation starts in dry run unless start_enabled, like a fresh plain node. A model
              that does not load fails the transition: the node stays inactive and says why.
  deactivate  stop the worker (after the step in flight) and the watchdog, publish zero motion, unsubscribe, and
              release the model (and the CUDA cache when on a GPU). Nothing is published while inactive.
  cleanup     destroy the publishers and services: back to unconfigured.
  shutdown    from any state: what deactivate and cleanup do, as far as they apply; then finalized.

Why a node of its own (`rt1_lifecycle_node`) and not a parameter of rt1_node: the node's class is fixed when it is
constructed, before any parameter can be read, and a plain node must keep working exactly as before.
"""
from __future__ import annotations

import functools
import gc
import sys
import time
import traceback

import torch
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import SetBool, Trigger

from rt1_ros.node.command_publishers import CommandPublishers
from rt1_ros.node.control_loop import ControlLoop, load_controller
from rt1_ros.node.node_process import run_node
from rt1_ros.node.parameter_declaration import declare_parameters, parameter_update
from rt1_ros.configuration.parameter_spec import from_parameters
from rt1_ros.node.parameters import NODE_NAME, PARAMETER_SPECS, NodeConfig

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
NOT_ACTIVE = "not active: no policy is running (ros2 lifecycle set {node} activate)"


def logs_exceptions(transition):
    """rclpy turns an exception raised by a transition into ERROR (then on_error) without a word: log it first."""
    @functools.wraps(transition)
    def logged(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return transition(self, state)
        except Exception:  # noqa: BLE001 — reported here, handled by the state machine's error processing
            self.get_logger().error(f"{transition.__name__} raised:\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR
    return logged


class Rt1LifecycleNode(LifecycleNode):
    def __init__(self, **node_kwargs) -> None:
        self.loop: ControlLoop | None = None  # while active
        self.outputs: CommandPublishers | None = None  # while configured (inactive or active)
        self._control_services: list = []  # ~/enable, ~/reset while configured
        super().__init__(NODE_NAME, **node_kwargs)
        self.config = declare_parameters(self, NodeConfig())
        self.policy_description = ""
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f"unconfigured: `ros2 lifecycle set {self.get_fully_qualified_name()} configure`, "
                               "then activate")

    # -- transitions -------------------------------------------------------------------------------------------
    @logs_exceptions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = from_parameters(NodeConfig, {name: self.get_parameter(name).value
                                                       for name in PARAMETER_SPECS}, base=NodeConfig())
        except (TypeError, ValueError) as exc:
            self.get_logger().error(f"cannot configure: {exc}")
            return FAILURE
        self.outputs = CommandPublishers(self, self.config, create_publisher=self.create_lifecycle_publisher)
        self._control_services = [self.create_service(SetBool, "~/enable", self._on_enable),
                                  self.create_service(Trigger, "~/reset", self._on_reset)]
        self.get_logger().info("configured (inactive): publishers and services created, no model loaded")
        return super().on_configure(state)

    @logs_exceptions
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            controller, self.policy_description = load_controller(self, self.config)
        except Exception as exc:  # a bad checkpoint or device: the transition fails with the reason, node inactive
            self.get_logger().error(f"cannot activate: {type(exc).__name__}: {exc}")
            return FAILURE
        # Publishers first, so the loop's first outputs are not dropped by a still-inactive lifecycle publisher.
        result = super().on_activate(state)
        self.loop = ControlLoop(self, self.config, controller, self.policy_description, self.outputs)
        self.loop.start()
        mode = "ENABLED" if controller.enabled else "DRY RUN (call ~/enable to send motion)"
        self.get_logger().info(f"active: {mode}, {self.config.control_trigger} trigger, "
                               f"{self.config.control_rate_hz:g} Hz")
        return result

    @logs_exceptions
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._end_loop()
        self.get_logger().info("deactivated: zero motion sent, model released")
        return super().on_deactivate(state)

    @logs_exceptions
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_cleanup(state)
        self._destroy_interfaces()
        self.get_logger().info("cleaned up (unconfigured)")
        return result

    @logs_exceptions
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._end_loop()
        result = super().on_shutdown(state)
        self._destroy_interfaces()
        self.get_logger().info("shut down (finalized)")
        return result

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # A transition raised: stop everything it may have started, and go back to unconfigured.
        self.get_logger().error(f"error during a transition from {state.label}: stopping, back to unconfigured")
        self._end_loop()
        self._destroy_interfaces()
        return SUCCESS

    def current_state_label(self) -> str:
        """unconfigured, inactive, active or finalized (or a transition's label while one runs)."""
        return self._state_machine.current_state[1]

    # -- what the transitions share ----------------------------------------------------------------------------
    def stop_motion(self) -> None:
        """Disable and end the loop's threads (the process's signal path, before the final zero)."""
        if self.loop is not None:
            self.loop.stop_motion()

    def _end_loop(self) -> bool:
        """Stop the policy, publish zero motion, unsubscribe and release the model; False when none ran."""
        loop, self.loop = self.loop, None
        if loop is None:
            return False
        loop.stop_motion()
        loop.publish_zero_motion()  # after the worker ended: no step computed before it can follow the zero
        loop.close()
        del loop
        gc.collect()  # the model is only reachable through the loop; collect it now, not at some later gc pass
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()  # give the freed blocks back to the GPU, for other processes to use
        return True

    def _destroy_interfaces(self) -> None:
        if self.outputs is not None:
            for publisher in self.outputs.all():
                self.destroy_lifecycle_publisher(publisher)
            self.outputs = None
        for service in self._control_services:
            self.destroy_service(service)
        self._control_services = []

    # -- services and parameters -------------------------------------------------------------------------------
    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if self.loop is None:
            response.success = False
            response.message = NOT_ACTIVE.format(node=self.get_fully_qualified_name())
        else:
            response.success, response.message = True, self.loop.set_enabled(request.data)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.loop is None:
            response.success = False
            response.message = NOT_ACTIVE.format(node=self.get_fully_qualified_name())
        else:
            response.success, response.message = True, self.loop.reset()
        return response

    def _on_set_parameters(self, parameters):
        self.config, result = parameter_update(self.config, parameters, PARAMETER_SPECS)
        if result.successful and self.loop is not None:
            self.loop.apply_config(self.config)
        elif result.successful and self.outputs is not None:
            self.outputs.config = self.config
        return result

    def destroy_node(self) -> None:
        if self.loop is not None:
            self.loop.stop_threads()
        super().destroy_node()


def _send_final_zero(node: Rt1LifecycleNode) -> None:
    # The shutdown transition, run here with no callback in flight: zero motion if active, the model released.
    was_active = node.loop is not None
    if node.current_state_label() != "finalized":
        node.trigger_shutdown()
    if was_active:
        time.sleep(0.2)  # let reliable DDS deliver the zero command before the participant goes away


def main(args: list[str] | None = None) -> int:
    # One executor thread, as rt1_node: no callback blocks for long except a transition (activate loads the model).
    return run_node(NODE_NAME, Rt1LifecycleNode, num_threads=1, args=args, before_drain=Rt1LifecycleNode.stop_motion,
                    after_drain=_send_final_zero)


if __name__ == "__main__":
    sys.exit(main())
