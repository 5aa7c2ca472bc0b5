"""A camera driver in its own process: publishes rgb8 frames of one size at a fixed rate, the way a real camera node
does on a robot (its own DDS participant, its own process), then prints how many it published as JSON.

    python -m rt1_ros.bench.camera_process --topic /ns/image --width 640 --height 480 --fps 30 --seconds 20

Header stamps are the publisher's ROS clock (wall time), so a receiver can tell a frame's age from its stamp.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument("--wait-for-subscriber", type=float, default=30.0,
                        help="seconds to wait for a matched subscriber before streaming")
    args = parser.parse_args(argv)

    import rclpy
    from sensor_msgs.msg import Image

    from rt1_ros.node import qos

    rclpy.init()
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    node = rclpy.create_node("camera_process")
    # A camera driver's usual QoS: keep the newest frame only (image_transport's sensor-data default is best effort,
    # most drivers publish reliable; both are offered). That is the package's camera profile.
    publisher = node.create_publisher(Image, args.topic, qos.camera(args.reliability))
    deadline = time.monotonic() + args.wait_for_subscriber
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline and not stopping:
        time.sleep(0.05)
    matched = publisher.get_subscription_count()
    message = Image(width=args.width, height=args.height, encoding="rgb8", step=args.width * 3)
    message.header.frame_id = "camera"
    # One random buffer, reused: the publisher's own cost should be the middleware's, not numpy's.
    message.data = np.random.default_rng(0).integers(0, 256, (args.height, args.width * 3), np.uint8).tobytes()
    period = 1.0 / args.fps
    published = 0
    late = 0
    started = time.monotonic()
    while not stopping and time.monotonic() - started < args.seconds:
        message.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(message)
        published += 1
        delay = started + published * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    elapsed = time.monotonic() - started
    cpu = time.process_time()
    print(json.dumps({"published": published, "seconds": round(elapsed, 3), "late": late,
                      "matched_subscribers": matched, "process_cpu_s": round(cpu, 2)}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
