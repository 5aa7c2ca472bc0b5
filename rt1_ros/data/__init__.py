"""Demonstration data: the on-disk episode format, simulator data generation and rosbag2 import."""
