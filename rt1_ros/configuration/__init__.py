"""The bottom layer, free of ROS and torch: typed configuration loaded strictly from YAML (`yaml_config`), ROS
parameters described once on config fields (`parameter_spec`), and RT-1's 11-dimensional action space
(`action_layout`). Every other layer may import it; it imports none of them."""
