"""Tools on top of the nodes: the closed loop over real ROS 2 topics (`loop`: rt1_node ⇄ sim_node in lockstep), and
what is built on it: `evaluation` (rt1-eval), `demo` (make demo), each episode's rosbag2/MCAP record
(`episode_bag`) and its video and plots (`episode_report`)."""
