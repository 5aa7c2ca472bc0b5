"""How much CPU rt1_node's process takes under a 30 fps 640x480 rgb8 camera running in another process, with control
at 3 Hz on the shipped model: the figure README "Performance" reports beside inference x rate.

    ROS_DOMAIN_ID=71 scripts/rt1-env python scripts/measure_node_cpu.py [auto|torch|onnxruntime|openvino]

Starts the node (start_enabled, control_rate_hz 3, inference_threads 1) and test/node/camera_process.py as their
own processes, sends an instruction, waits for the first actions and 5 s more, then reads the node process's CPU
time (/proc/<pid>/stat utime + stime) over 20 s, and the steps and inference times it published meanwhile.
"""
import json
import os
import signal
import subprocess
import sys
import time

import rclpy
from rclpy.node import Node
from std_msgs.msg import String

from rt1_ros import qos
from rt1_ros.msg import RT1Action

NAMESPACE = "/node_cpu"
LOG = "/tmp/rt1_node_cpu.log"
WINDOW_S = 20.0


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def spin_for(node: Node, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)


def main() -> int:
    backend = sys.argv[1] if len(sys.argv) > 1 else "auto"
    node_process = subprocess.Popen(
        [sys.executable, "-m", "rt1_ros.node.rt1_node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
         "-p", "checkpoint:=models/rt1_sim", "-p", "start_enabled:=true", "-p", "control_rate_hz:=3.0",
         "-p", f"inference_backend:={backend}", "-p", "inference_threads:=1"],
        stdout=open(LOG, "w"), stderr=subprocess.STDOUT)
    camera = subprocess.Popen([sys.executable, "test/node/camera_process.py", "--topic", f"{NAMESPACE}/image",
                               "--fps", "30", "--seconds", "90"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rclpy.init()
    probe = Node("node_cpu_probe")
    actions: list[RT1Action] = []
    probe.create_subscription(RT1Action, f"{NAMESPACE}/rt1_action", actions.append, 10)
    probe.create_publisher(String, f"{NAMESPACE}/instruction", qos.LATCHED).publish(
        String(data="pick up the red cube"))
    started = time.monotonic()
    while len(actions) < 6 and time.monotonic() - started < 120:
        rclpy.spin_once(probe, timeout_sec=0.1)
    if not actions:
        raise SystemExit("the node published no action; its log: " + open(LOG).read()[-2000:])
    spin_for(probe, 5.0)
    cpu_before, count_before, clock = cpu_seconds(node_process.pid), len(actions), time.monotonic()
    spin_for(probe, WINDOW_S)
    cpu_after, elapsed = cpu_seconds(node_process.pid), time.monotonic() - clock
    window = actions[count_before:]
    node_process.send_signal(signal.SIGINT)
    node_process.wait(30)
    camera.terminate()
    camera.wait(30)
    rate = len(window) / elapsed
    inference_ms = sum(a.inference_ms for a in window) / max(1, len(window))
    print(json.dumps({"backend": backend, "node_cpu_fraction_of_a_core": round((cpu_after - cpu_before) / elapsed, 4),
                      "steps_per_s": round(rate, 2), "inference_ms_mean": round(inference_ms, 2),
                      "inference_x_rate_fraction_of_a_core": round(inference_ms / 1000 * rate, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
