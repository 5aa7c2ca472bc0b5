"""A simulator's clock and camera in a process of their own, the way Gazebo and ros_gz_bridge provide them: /clock at
a fixed rate (reliable), and camera frames stamped with that clock. Driven over stdin by the test that starts it:

    python test/sim_clock_process.py --clock-topic /ns/clock --image-topic /ns/image --start-s 10

    frames on|off   publish camera frames (every --frame-every clock ticks) or not
    jump S          set the clock to S seconds (a world reset: back to 0) and go on from there
    pause|resume    stop the clock (and with it the camera), as a paused simulator does; start it again
    quit

Each command is answered on stdout with one JSON line once it is in effect: the sim time then and what was published
so far. The clock runs at real time (one tick of --tick-s sim seconds per --tick-s wall seconds, late ticks are not
made up). The first line, {"ready": ...}, comes once the clock and the camera have a subscriber each.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time

NANOSECONDS = 1_000_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clock-topic", default="/clock")
    parser.add_argument("--image-topic", required=True)
    parser.add_argument("--start-s", type=float, default=10.0)
    parser.add_argument("--tick-s", type=float, default=0.01, help="sim seconds per /clock message (100 Hz)")
    parser.add_argument("--frame-every", type=int, default=10, help="clock ticks per camera frame")
    parser.add_argument("--wait-for-subscribers", type=float, default=120.0)
    args = parser.parse_args(argv)

    import numpy as np
    import rclpy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from rt1_ros.node import qos
    from rt1_ros.node.ros_graph import to_stamp

    rclpy.init()
    node = rclpy.create_node("sim_clock_process")
    clock_publisher = node.create_publisher(Clock, args.clock_topic, qos.COMMANDS_AND_STATE)
    image_publisher = node.create_publisher(Image, args.image_topic, qos.camera("reliable"))
    deadline = time.monotonic() + args.wait_for_subscribers
    while (clock_publisher.get_subscription_count() == 0 or image_publisher.get_subscription_count() == 0) \
            and time.monotonic() < deadline:
        time.sleep(0.05)

    lock = threading.Lock()
    state = {"ns": round(args.start_s * NANOSECONDS), "ticks": 0, "frames": False, "running": True, "quit": False,
             "clocks": 0, "images": 0}
    tick_ns = round(args.tick_s * NANOSECONDS)
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64 * 3), np.uint8).tobytes()

    def publish_tick() -> None:
        stamp = to_stamp(state["ns"])
        clock_publisher.publish(Clock(clock=stamp))
        state["clocks"] += 1
        if state["frames"] and state["ticks"] % args.frame_every == 0:
            image = Image(height=48, width=64, encoding="rgb8", is_bigendian=0, step=64 * 3)
            image.header.stamp = stamp
            image.header.frame_id = "camera"
            image.data = pixels
            image_publisher.publish(image)
            state["images"] += 1

    def run_clock() -> None:
        next_tick = time.monotonic()
        while True:
            with lock:
                if state["quit"]:
                    return
                if state["running"]:
                    publish_tick()
                    state["ticks"] += 1
                    state["ns"] += tick_ns
            next_tick = max(next_tick + args.tick_s, time.monotonic())
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def answer(command: str) -> None:
        print(json.dumps({"command": command, "sim_s": state["ns"] / NANOSECONDS, "clocks": state["clocks"],
                          "images": state["images"]}), flush=True)

    print(json.dumps({"ready": clock_publisher.get_subscription_count() > 0}), flush=True)
    thread = threading.Thread(target=run_clock, daemon=True)
    thread.start()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        with lock:
            if words[0] == "frames":
                state["frames"] = words[1] == "on"
                state["ticks"] = 0  # the next tick publishes a frame
            elif words[0] == "jump":
                state["ns"] = round(float(words[1]) * NANOSECONDS)
                state["ticks"] = 0
                publish_tick()  # the jump is on the wire before the command is answered
                state["ticks"] += 1
                state["ns"] += tick_ns
            elif words[0] == "pause":
                state["running"] = False
            elif words[0] == "resume":
                state["running"] = True
            elif words[0] == "quit":
                state["quit"] = True
            answer(" ".join(words))
        if words[0] == "quit":
            break
    with lock:
        state["quit"] = True
    thread.join(timeout=5.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
