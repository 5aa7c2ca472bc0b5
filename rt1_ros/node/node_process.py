"""The process around a node: start-up errors as exit codes, SIGINT/SIGTERM handled so the node can stop safely.

rclpy's own signal handlers shut the context down at once, before a node could publish a last zero command (or while
a simulation thread still publishes); here a signal only ends the spin loop, and the node's stop hooks run first.
"""
from __future__ import annotations

import signal
import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

# spin_once with a timeout, not spin(): a wait with nothing to wake it would never let the Python signal handler run.
SPIN_TIMEOUT_S = 0.1
CALLBACK_DRAIN_TIMEOUT_S = 10.0
EXIT_INTERRUPTED = 130
EXIT_START_FAILED = 2


class _StopRequest:
    """What a SIGINT/SIGTERM does: during start-up it raises KeyboardInterrupt (loading a model may take long, and
    nothing is running yet); once the node spins it only sets ``requested``, which the spin loop reads after each
    ``spin_once``. An exception raised from a signal handler lands wherever the main thread is, and inside rclpy's
    C++ bindings (taking a message) it surfaces as a RuntimeError instead of a KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self.spinning = False

    def __call__(self, signum, frame) -> None:
        self.requested = True
        if not self.spinning:
            raise KeyboardInterrupt


def run_node(name: str, make_node: Callable[[], Node], num_threads: int, args: list[str] | None = None,
             before_drain: Callable[[Node], None] | None = None,
             after_drain: Callable[[Node], None] | None = None) -> int:
    """Spin the node from ``make_node`` until SIGINT/SIGTERM or shutdown; returns the process exit code.

    ``num_threads`` 1 spins a SingleThreadedExecutor: right for a node whose callbacks never block for long, and it
    avoids rclpy's MultiThreadedExecutor spinning busily while a ready entity waits for its busy callback group.

    ``before_drain`` runs as soon as the loop ends (e.g. stop sending motion); then running callbacks are allowed to
    finish; then ``after_drain`` runs with no callback in flight (e.g. publish the final zero command).
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = _StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        node = make_node()
        stop.spinning = True
    except KeyboardInterrupt:
        rclpy.try_shutdown()
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bad checkpoint, config or device must stop start-up with the reason
        print(f"{name}: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return EXIT_START_FAILED
    executor = SingleThreadedExecutor() if num_threads == 1 else MultiThreadedExecutor(num_threads=num_threads)
    executor.add_node(node)
    try:
        while rclpy.ok() and not stop.requested:
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if before_drain is not None:
            before_drain(node)
        executor.shutdown(timeout_sec=CALLBACK_DRAIN_TIMEOUT_S)
        if after_drain is not None:
            after_drain(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
