"""Embedded MuJoCo simulator of a mobile manipulator: scene, tasks, scripted experts (ROS-free) and its ROS node.

Everything but ``sim_node`` runs without rclpy, so demonstrations can be generated and policies evaluated in plain
Python; nothing here imports torch (test/test_action_layout.py checks). Rendering is headless: ``MUJOCO_GL`` defaults
to ``egl`` when the simulator module is imported first.
"""
