"""An in-process ROS 2 graph: a private rclpy context on its own DDS domain, each node spun by its own executor thread.

Why one single-threaded executor per node, not one shared ``MultiThreadedExecutor``: when a callback of a mutually
exclusive group runs long (an inference step), a shared multi-threaded executor keeps finding that group's other
ready entities (a timer, a queued message) that it may not take yet, so ``rcl_wait`` returns at once and the spin
loop burns a core doing nothing — the core that inference and rendering need (0.7 steps/s instead of 5+ in the
demo). A single-threaded executor runs one callback at a time and only waits when it has nothing to run, so an idle
node costs nothing; separate threads keep a slow node (the simulator, the policy) from delaying the others.

Why a private domain: two runs on one machine (two `make demo`, an evaluation next to a test suite) would otherwise
share the global ``/clock`` and, with equal namespaces, each other's topics. The tests' harness joins the environment's
ROS_DOMAIN_ID instead (`environment_domain_id`): the node processes it starts must find its peer.

Stamps: ``builtin_interfaces/Time`` <-> integer nanoseconds here (`stamp_ns`, `to_stamp`), exactly; everything that
compares or stores a stamp uses these, and seconds are ``stamp_ns(stamp) / NANOSECONDS``.
"""
from __future__ import annotations

import os
import random
import threading
import traceback

import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

NANOSECONDS = 1_000_000_000
# Fast DDS maps a domain id onto UDP ports; ids above 232 do not fit the default port mapping.
PRIVATE_DOMAIN_RANGE = (101, 232)


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time (or rosgraph Clock's ``clock``) -> integer nanoseconds (exact; float seconds would
    round)."""
    return stamp.sec * NANOSECONDS + stamp.nanosec


def to_stamp(nanoseconds: int) -> Time:
    """Integer nanoseconds (>= 0) -> builtin_interfaces/Time."""
    sec, nanosec = divmod(int(nanoseconds), NANOSECONDS)
    return Time(sec=sec, nanosec=nanosec)


def call_service(client, request, timeout_s: float):
    """``client``'s response to ``request``, or None when none came within ``timeout_s`` (a dead or unreachable
    server; the request is then forgotten, so a late answer is dropped). For a thread other than the one spinning
    the client's node, which delivers the response: the graph's nodes each spin in their own thread."""
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout_s):
        client.remove_pending_request(future)
        return None
    return future.result()


def private_domain_id() -> int:
    """A random DDS domain id above the ones people set by hand (and above scripts/env.sh's default 42), so two
    graphs on one machine almost never share one (1 in 132); their namespaces keep them apart even then."""
    return random.SystemRandom().randint(*PRIVATE_DOMAIN_RANGE)


def environment_domain_id() -> int:
    """The DDS domain that ``ros2 run`` and a plain ``rclpy.init()`` join: ROS_DOMAIN_ID, else 0."""
    return int(os.environ.get("ROS_DOMAIN_ID") or 0)


class InProcessGraph:
    """Owns a context and one spinning executor per added node; ``close()`` (or ``with``) tears everything down."""

    def __init__(self, domain_id: int | None = None, args: list[str] | None = None) -> None:
        """``domain_id``: None = a private random one; give one to watch the graph from outside (rviz, Foxglove).
        ``args``: command-line arguments whose ``--ros-args`` part (remappings, parameters) applies to every node
        of the graph, as with a plain ``rclpy.init(args=...)``."""
        self.domain_id = private_domain_id() if domain_id is None else domain_id
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id, args=args)
        self._spinners: list[tuple[Node, SingleThreadedExecutor, threading.Thread]] = []
        self.errors: list[BaseException] = []  # exceptions raised by callbacks (logged, and the node spins on)

    def add(self, node: Node) -> Node:
        """Start spinning ``node`` (created with ``context=graph.context``) in a thread of its own."""
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        thread = threading.Thread(target=self._spin, args=(node, executor), name=f"spin-{node.get_name()}",
                                  daemon=True)
        thread.start()
        self._spinners.append((node, executor, thread))
        return node

    def _spin(self, node: Node, executor: SingleThreadedExecutor) -> None:
        # spin() blocks in rcl_wait while idle; shutdown() wakes it. A callback's exception would end spin() and
        # leave the node deaf without a word: it is logged and kept, and the node spins on.
        while True:
            try:
                executor.spin()  # returns at once once the executor or the context is shut down
                return
            except ExternalShutdownException:
                return
            except Exception as exc:  # noqa: BLE001 — reported, then the node keeps serving
                self.errors.append(exc)
                node.get_logger().error(f"callback raised {type(exc).__name__}: {exc}\n"
                                        f"{''.join(traceback.format_exception(exc))}")

    def remove(self, node: Node) -> None:
        for entry in list(self._spinners):
            if entry[0] is node:
                self._stop(entry)
                self._spinners.remove(entry)

    @staticmethod
    def _stop(entry: tuple[Node, SingleThreadedExecutor, threading.Thread]) -> None:
        node, executor, thread = entry
        executor.shutdown(timeout_sec=10.0)  # waits for a running callback, then ends spin()
        thread.join(timeout=10.0)
        node.destroy_node()

    def close(self) -> None:
        # Reverse order: the nodes added last (typically the simulator) stop before those they talk to.
        while self._spinners:
            self._stop(self._spinners.pop())
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> "InProcessGraph":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
