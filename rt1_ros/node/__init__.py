"""The ROS 2 adapters: `rt1_node` / `rt1_lifecycle_node` (parameters onto the runtime's typed configs, messages in and
out; all logic is in `rt1_ros.runtime`) and `sim_node` (the embedded simulator's topics and services), with the QoS
profiles, message codecs and process helpers they share. `sim_node` must not pull in torch: nothing here imports it
at package level."""
