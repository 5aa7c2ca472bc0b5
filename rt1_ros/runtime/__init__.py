"""The ROS-free runtime of the policy node: `controller` (decoding, mode rules, smoothing, limits, holds: everything
between a policy step and a motion command) and `policy_loading` (a ready-to-step policy from the node's parameters).

The ROS node is a thin adapter over `controller.Controller`; everything here is testable without middleware.
"""
