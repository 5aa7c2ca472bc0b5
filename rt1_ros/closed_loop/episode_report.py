"""What one closed-loop episode leaves behind for a person to look at: a video of the camera with the instruction
and the commands overlaid, a plot of the commanded actions and mode over time, and a summary (JSON + Markdown).

ROS-free: the demo (and anyone replaying a rosbag) fills an `EpisodeLog` step by step and calls `write_report`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rt1_ros.configuration.action_layout import GRIPPER_DIM, Mode

MODE_NAMES = {mode.value: mode.name.lower() for mode in Mode}  # RT1Action.mode -> arm, base, terminate, hold
VIDEO_SCALE = 2  # 300 px frames are small on a screen; text needs the room
LINE_HEIGHT = 20  # pixels per overlay text line


@dataclass
class EpisodeStep:
    sim_time_s: float
    frame: np.ndarray  # (H,W,3) uint8 RGB, the image the policy acted on
    arm: np.ndarray  # (7,) x y z roll pitch yaw gripper, as published: action[ARM_DIMS], so action indices apply
    base: np.ndarray  # (3,) vx vy wz
    mode: int
    inference_ms: float
    attention: np.ndarray | None = None  # (K,g,g) TokenLearner maps of this frame (demo --attention), drawn below it


@dataclass
class EpisodeSummary:
    instruction: str
    task_family: str
    seed: int
    policy: str
    trained: bool
    steps: int
    success: bool
    sim_time_s: float
    wall_time_s: float
    control_rate_hz_wall: float
    real_time_factor: float
    inference_ms_median: float
    inference_ms_p90: float
    end_reason: str


@dataclass
class EpisodeLog:
    instruction: str
    steps: list[EpisodeStep] = field(default_factory=list)


def overlay(step: EpisodeStep, instruction: str, index: int) -> np.ndarray:
    """One video frame: the camera image scaled up, with instruction, mode and commands written on it."""
    image = cv2.resize(step.frame, None, fx=VIDEO_SCALE, fy=VIDEO_SCALE, interpolation=cv2.INTER_NEAREST)
    image = np.ascontiguousarray(image)
    lines = [
        instruction,
        f"step {index}  t={step.sim_time_s:.1f}s  mode={MODE_NAMES.get(step.mode, step.mode)}  "
        f"{step.inference_ms:.0f} ms",
        "arm d[mm]=({:+.0f},{:+.0f},{:+.0f}) grip={:.0f}".format(*(step.arm[:3] * 1000), step.arm[GRIPPER_DIM]),
        "base v=({:+.2f},{:+.2f}) m/s w={:+.2f} rad/s".format(*step.base),
    ]
    band_height = 10 + LINE_HEIGHT * len(lines)
    # Darken a band behind the text instead of outlining each glyph: legible after video compression.
    image[:band_height] = (image[:band_height] * 0.35).astype(np.uint8)
    for row, text in enumerate(lines):
        cv2.putText(image, text, (8, LINE_HEIGHT * (row + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    if step.attention is not None:
        image = np.concatenate([image, attention_strip(step.frame, step.attention, image.shape[1])], axis=0)
    return image


def attention_strip(frame: np.ndarray, maps: np.ndarray, width: int) -> np.ndarray:
    """(K,g,g) TokenLearner maps -> a row of K thumbnails of ``frame``, each lit where its token reads (the map
    scaled to its own maximum: a token's weights sum to 1, so absolute values would hide all but the sharpest)."""
    count = len(maps)
    side = width // count
    thumbnail = cv2.resize(frame, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    tiles = []
    for index, weights in enumerate(maps):
        heat = cv2.resize(weights / max(float(weights.max()), 1e-12), (side, side), interpolation=cv2.INTER_CUBIC)
        colour = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
        tile = (0.45 * thumbnail + 0.55 * colour).astype(np.uint8)
        cv2.putText(tile, f"token {index}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    strip = np.concatenate(tiles, axis=1)
    return np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)))  # (side,width,3)


def write_video(log: EpisodeLog, path: Path, fps: float) -> Path:
    """MP4 (H.264 via the ffmpeg bundled with imageio-ffmpeg); falls back to GIF where no encoder is available."""
    import imageio.v2 as imageio

    frames = [overlay(step, log.instruction, i) for i, step in enumerate(log.steps)]
    try:
        with imageio.get_writer(path.with_suffix(".mp4"), fps=fps, codec="libx264", macro_block_size=8,
                                ffmpeg_log_level="error") as writer:
            for frame in frames:
                writer.append_data(frame)
        return path.with_suffix(".mp4")
    except (ImportError, RuntimeError, OSError):
        imageio.mimsave(path.with_suffix(".gif"), frames, duration=1.0 / fps)
        return path.with_suffix(".gif")


def write_action_plot(log: EpisodeLog, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    t = np.array([s.sim_time_s for s in log.steps])
    arm = np.array([s.arm for s in log.steps]).reshape(-1, 7)
    base = np.array([s.base for s in log.steps]).reshape(-1, 3)
    mode = np.array([s.mode for s in log.steps])
    figure, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    for i, name in enumerate(("x", "y", "z")):
        axes[0].step(t, arm[:, i] * 1000, where="post", label=name)
    axes[0].set_ylabel("arm Δ [mm/step]")
    for i, name in enumerate(("roll", "pitch", "yaw")):
        axes[1].step(t, arm[:, 3 + i], where="post", label=name)
    axes[1].step(t, arm[:, GRIPPER_DIM], where="post", label="gripper", color="k", linestyle="--")
    axes[1].set_ylabel("arm rot Δ [rad], gripper")
    for i, name in enumerate(("vx", "vy", "wz")):
        axes[2].step(t, base[:, i], where="post", label=name)
    axes[2].set_ylabel("base [m/s, rad/s]")
    axes[3].step(t, np.where(mode == Mode.HOLD, -1, mode), where="post", color="tab:purple")
    axes[3].set_yticks([-1, 0, 1, 2], ["hold", "arm", "base", "terminate"])
    axes[3].set_ylabel("mode")
    axes[3].set_xlabel("sim time [s]")
    for axis in axes[:3]:
        axis.legend(loc="upper right", fontsize=8, ncols=4)
        axis.grid(alpha=0.3)
    figure.suptitle(log.instruction)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def summarise_latency(log: EpisodeLog) -> tuple[float, float]:
    latencies = np.array([s.inference_ms for s in log.steps if s.inference_ms > 0])
    if latencies.size == 0:
        return 0.0, 0.0
    return float(np.median(latencies)), float(np.percentile(latencies, 90))


def write_report(log: EpisodeLog, summary: EpisodeSummary, directory: Path, fps: float) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    outputs = {}
    if log.steps:
        outputs["video"] = write_video(log, directory / "episode", fps)
        outputs["plot"] = write_action_plot(log, directory / "actions.png")
    outputs["summary_json"] = directory / "summary.json"
    outputs["summary_json"].write_text(json.dumps(asdict(summary), indent=2) + "\n")
    rows = "\n".join(f"| {key} | {value} |" for key, value in asdict(summary).items())
    outputs["summary_md"] = directory / "summary.md"
    outputs["summary_md"].write_text(f"# rt1_ros demo episode\n\n| field | value |\n|---|---|\n{rows}\n")
    return outputs
