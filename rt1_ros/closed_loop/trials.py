"""rt1-trial: operator-scored trials of a running rt1_node, for a robot where no simulator state can say whether an
episode succeeded.

    rt1-trial --instruction "pick up the sponge" --episodes 10 --output outputs/trials/sponge
    rt1-trial --instructions-file kitchen.txt --output outputs/trials/kitchen --ros-args -r __ns:=/robot1
    rt1-trial --output outputs/trials/kitchen            # after a crash or a quit: continues where it stopped

rt1-trial is a ROS 2 node (`rt1_trial`) beside an rt1_node that is already running (`ros2 launch rt1_ros
rt1.launch.py`); it needs no simulator. Each episode:

  scene    rt1_node is disabled (zero motion); the operator sets the scene for the instruction shown and presses
           Enter, or calls `~/scene_ready`.
  start    the instruction is published (latched) on `instruction`, rt1_node's `~/reset` clears its history, and
           once the node reports on `rt1_action` that it runs this instruction, its `~/enable true` starts motion.
  running  until the policy terminates (rt1_action mode terminate), the episode timeout passes (on this node's
           clock: sim time under use_sim_time) or the operator stops it (Enter, or `~/stop`): then rt1_node's
           `~/enable false`, which publishes zero motion at once.
  verdict  the operator answers y / n / s (skip), or calls `~/verdict` (true = success) or `~/skip`. A skipped
           attempt is recorded but not scored, and the episode is run again.
  record   the verdict is appended to <output>/trials.jsonl (flushed and fsynced before anything else), then the
           episode's topics go to <output>/episodes/episode_<NNN>_<attempt>/ (rosbag2/MCAP) with the verdict, the
           instruction, the stop reason and the times in metadata.yaml's custom_data.

`~/stop` always disables rt1_node, whatever the phase. `~/state` (std_msgs/String, latched) carries the phase as
JSON, for a display or a scripted operator. At the end the success rates are printed with 95 % Wilson intervals, as
rt1-eval prints them, and written to <output>/results.json and results.md.

Resuming: <output>/trial.json keeps the plan (the instruction of every episode) and trials.jsonl every verdict
given. A run started on an output that has them continues with the first episode that has no verdict; an episode
that was running when the process died is run again. Nothing scored is lost: a verdict is on disk before the next
episode starts. A run killed mid-episode leaves rt1_node enabled: a new rt1-trial disables it before anything else
(and the robot's e-stop is the safety stop, not this tool).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from rt1_ros.closed_loop.trial_plan import parse_task, plan_episodes, read_tasks
from rt1_ros.closed_loop.trial_run import TrialRun, TrialSettings
from rt1_ros.closed_loop.trial_session import TrialError


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rt1-trial", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="ROS arguments go after --ros-args (remappings, use_sim_time, __ns).")
    parser.add_argument("--instruction", action="append", default=[], metavar="TEXT",
                        help="an instruction, '[task] text' to name its column (repeatable; episodes go round them)")
    parser.add_argument("--instructions-file", type=Path, default=None,
                        help="one instruction per line, '[task] text' or text; # comments")
    parser.add_argument("--episodes", type=int, default=None, help="episodes in all (default: one per instruction)")
    parser.add_argument("--output", required=True, type=Path, help="trial.json, trials.jsonl, episodes/, results.*")
    parser.add_argument("--condition", default=None, help="row label of the table (default 'robot')")
    parser.add_argument("--node", default="rt1_node", help="rt1_node's name, relative to the namespace or absolute")
    parser.add_argument("--episode-timeout-s", type=float, default=120.0,
                        help="per episode, on the node clock (sim time under use_sim_time)")
    parser.add_argument("--no-record", action="store_true", help="do not write the episodes' rosbag2/MCAP")
    parser.add_argument("--camera-record-hz", type=float, default=5.0,
                        help="camera frames kept per second in the bag (0: every frame; memory grows with it)")
    parser.add_argument("--service-timeout-s", type=float, default=10.0)
    parser.add_argument("--no-prompt", action="store_true",
                        help="take the operator's input from the services only (not from this terminal)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_arguments(remove_ros_args(args=["rt1-trial", *argv])[1:])
    tasks = [parse_task(text) for text in args.instruction]
    if args.instructions_file is not None:
        tasks += read_tasks(args.instructions_file)
    try:
        plan = plan_episodes(tasks, args.episodes) if tasks else None
    except ValueError as exc:
        print(f"rt1-trial: {exc}", file=sys.stderr)
        return 2
    if plan is None and args.episodes is not None:
        print("rt1-trial: --episodes needs instructions", file=sys.stderr)
        return 2
    settings = TrialSettings(output=str(args.output), plan=tuple(plan) if plan else None, condition=args.condition,
                             policy_node=args.node, episode_timeout_s=args.episode_timeout_s,
                             record=not args.no_record, camera_record_hz=args.camera_record_hz,
                             service_timeout_s=args.service_timeout_s)
    from rt1_ros.node.ros_graph import InProcessGraph, environment_domain_id

    # SIGTERM as Ctrl-C: the run's finally disables rt1_node before the process ends.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    graph = InProcessGraph(environment_domain_id(), args=["rt1-trial", *argv])
    run = None
    try:
        run = TrialRun(settings, graph, terminal=None if args.no_prompt else sys.stdin)
        run.run()
        return 0
    except TrialError as exc:
        print(f"rt1-trial: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nrt1-trial: interrupted; every verdict given is in trials.jsonl, the same command continues",
              file=sys.stderr)
        return 130
    finally:
        if run is not None:
            run.close()
        graph.close()


if __name__ == "__main__":
    sys.exit(main())
