"""The ROS-free runtime around RT-1: image decoding, frame-token history, decoding, smoothing and safety.

The ROS node is a thin adapter over `controller.Controller`; everything here is testable without middleware.
"""
