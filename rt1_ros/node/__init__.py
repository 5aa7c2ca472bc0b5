"""The ROS 2 adapter: parameters onto the runtime's typed configs, messages in and out. All logic is in runtime/."""
