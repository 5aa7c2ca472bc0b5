"""Every QoS profile of the package's nodes, tools and tests, each with the reason for it (README "Topics and
services of `rt1_node`").

A publisher and a subscription only connect when their profiles are compatible (a reliable subscription does not
receive from a best-effort publisher; a transient-local subscription does not from a volatile publisher), so the two
ends of every topic take their profile from here.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# The instruction and the sim's episode status: one current value, which a node that starts (or restarts) after it
# was sent must still get. Reliable + transient local + keep last 1: "latched". rt1_node takes the newest of two
# latched instructions by source timestamp (docs/reliability.md "Instructions").
LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Commands, actions, odometry, joint states, /clock and diagnostics: rclpy's default for a depth of 10 (reliable,
# volatile), spelled out. Each message supersedes the one before, and lockstep pacing needs every rt1_action and
# arm_command delivered, which best effort would not guarantee.
COMMANDS_AND_STATE = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)

# An observer that records a whole episode (the closed loop's actions and, for the demo's video, its frames): reliable
# with room for a burst while the observer's thread is busy, so no step of the record is lost.
RECORDING = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)

# tf: tf2's own broadcaster profile (reliable, volatile, depth 100): many transforms a second, each one needed for
# interpolation by listeners and recorders. tf_static uses LATCHED, as tf2's static broadcaster does.
TRANSFORMS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)

CAMERA_RELIABILITY = ("best_effort", "reliable")


def camera(reliability: str) -> QoSProfile:
    """Camera images, publisher or subscription (the nodes' ``image_reliability`` parameter): only the newest frame
    matters, so keep last 1 and never queue stale frames. A best-effort subscription receives from reliable and
    best-effort publishers (the default of real cameras is either); ``reliable`` makes a lockstep simulator's every
    frame arrive."""
    if reliability not in CAMERA_RELIABILITY:
        raise ValueError(f"camera reliability must be one of {CAMERA_RELIABILITY}, got {reliability!r}")
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                      reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                                   else ReliabilityPolicy.BEST_EFFORT),
                      durability=DurabilityPolicy.VOLATILE)
