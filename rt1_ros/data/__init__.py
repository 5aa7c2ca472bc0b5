"""Demonstration data: the on-disk episode format (`dataset`), LeRobot v3 export and import, rosbag2 import."""
