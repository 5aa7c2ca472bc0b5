"""Embedded MuJoCo simulator of a mobile manipulator: scene, scene variation and evaluation conditions, tasks,
scripted experts, episodes and failure analysis. ROS-free and torch-free, so demonstrations can be generated and
policies evaluated in plain Python (its ROS node is `rt1_ros.node.sim_node`). Rendering is headless: ``MUJOCO_GL``
defaults to ``egl`` when the simulator module is imported first.
"""
