"""`rt1-import-bag --mapping`: a robot's ordinary topics (/tf, /joint_states, /odom, a camera, perhaps command
topics) -> RT-1 episodes, through a declared mapping (rt1_ros.data.rosbag_mapping; config/rosbag_mapping_ordinary.yaml
maps the simulator's topics).

Per episode (segments: one instruction for the whole bag, or a sidecar YAML, see `load_segments`):
* control ticks t_k = first image of the episode + k / rate_hz, up to its last image; frame k is the newest image
  at or before t_k (an image stamped up to ``frame_tolerance_s`` after t_k counts as at t_k: stamps jitter);
* action k describes what happened over [t_k, t_{k+1}):
  - arm deltas from the end-effector pose in the arm frame at t_k + delay and t_{k+1} + delay: translation
    difference, and the rotation D = R_{k+1} R_k^T as (roll, pitch, yaw) with D = Rz(yaw) Ry(pitch) Rx(roll), which
    is how the node and the simulator apply a rotation delta about the arm frame's axes; or, from commanded
    TwistStamped velocities, their integral over the tick;
  - the gripper's closedness from joints at t_{k+1} + delay (the state the tick's command led to), each normalised
    between its declared open and closed positions and averaged; or the command topic's value in force;
  - the base from odometry: the constant body twist that carries the pose at t_k + delay to the pose at
    t_{k+1} + delay, or the odometry's twist averaged over the tick; or cmd_vel's command in force;
  - mode as rt1-import-bag always derived it: base while the base moves above the thresholds (the arm deltas then
    zeroed), else arm (the base zeroed); the last tick is terminate with zero motion and the gripper held.
* Nothing is written until every bag has been read and checked: a topic, a frame, a joint or a field the mapping
  names and a bag lacks is refused by name first (`BagImportError`).

A measured pose is not the commanded one: a servo lags its target and contact stops it, so measured deltas differ
from the commands that caused them mostly where a motion starts or stops; ``delay_s`` shifts the sampling by the
servo's lag to line them up (docs/results.md gives the simulator's numbers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt1_ros.configuration.action_layout import DIMENSION_NAMES, ActionSpaceConfig
from rt1_ros.data.bag_segments import Segmentation
from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter, open_or_empty
from rt1_ros.data.ordinary_actions import PlannedEpisode, clip_actions, plan_episodes
from rt1_ros.data.ordinary_streams import BagStreams, read_frames, read_streams
from rt1_ros.data.rosbag_mapping import BagMapping


@dataclass(frozen=True)
class OrdinaryImportSettings:
    frame_size: int = 112
    task_family: str = "rosbag"
    min_steps: int = 2


def plan_import(bags: list[tuple[Path, Segmentation]], mapping: BagMapping,
                action_space: ActionSpaceConfig) -> list[tuple[BagStreams, list[PlannedEpisode]]]:
    """Read and check every bag and compute every episode's actions; nothing is written."""
    return [(streams, plan_episodes(streams, mapping, segmentation, action_space))
            for streams, segmentation in ((read_streams(bag, mapping), segmentation) for bag, segmentation in bags)]


def import_bags(bags: list[tuple[Path, Segmentation]], mapping: BagMapping, output: str | Path,
                settings: OrdinaryImportSettings = OrdinaryImportSettings(), mapping_path: str = "",
                action_space: ActionSpaceConfig | None = None, log=print) -> list:
    """Import the episodes of every (bag, segmentation) into the dataset at ``output``; returns the written
    episodes. Every bag is read and checked before the first episode is written. Failed episodes are written with
    success false, which training leaves out unless asked (rt1-train successful_only)."""
    action_space = action_space or ActionSpaceConfig.from_yaml()
    plans = plan_import(bags, mapping, action_space)
    existing = open_or_empty(output)
    done = existing.existing_keys() if existing is not None else set()
    writer = EpisodeWriter(output)
    clipped = np.zeros(len(DIMENSION_NAMES), dtype=np.int64)
    written = []
    for streams, planned in plans:
        keyed = []
        for number, episode in enumerate(planned):
            family = episode.segment.task_family or settings.task_family
            seed = episode.segment.seed if episode.segment.seed is not None else number
            key = (f"rosbag:{streams.bag.name}", family, seed)
            if key not in done:
                keyed.append((episode, family, seed))
        wanted = {int(i) for episode, _, _ in keyed for i in episode.image_indices}
        frames = read_frames(streams.bag, mapping, streams, wanted, settings.frame_size) if wanted else {}
        for episode, family, seed in keyed:
            actions = clip_actions(episode.actions.copy(), action_space, clipped)
            info = EpisodeInfo(instruction=episode.segment.instruction, task_family=family, seed=seed,
                               success=episode.segment.success, source=f"rosbag:{streams.bag.name}",
                               fps=mapping.rate_hz,
                               extra={"bag": str(streams.bag.resolve()), "mapping": mapping_path,
                                      "clock": mapping.clock, "start_ns": int(episode.tick_times_ns[0]),
                                      "end_ns": int(episode.tick_times_ns[-1])})
            stacked = np.stack([frames[int(i)] for i in episode.image_indices])
            written.append(writer.write(stacked, actions, info))
    for name, count in zip(DIMENSION_NAMES, clipped):
        if count:
            log(f"  {name}: {count} value(s) outside the action-space range, clipped (config/action_space.yaml)")
    return written
