"""Camera frames to and from the MP4 files of a LeRobotDataset, with PyAV (`av`, FFmpeg bundled in its wheel).

Writing: H.264 (libx264), yuv420p, one frame every 1/fps s with presentation time k/fps exactly (time base 1/fps),
so the frame an episode's data row refers to sits at from_timestamp + timestamp in the file, as the v3 reader looks
for it. H.264/yuv420p is what every FFmpeg, torchcodec and browser decodes; it is lossy (docs/training.md: the round trip).
Reading: any codec FFmpeg decodes (lerobot writes AV1 by default); frames are matched to the rows' timestamps
within a tolerance, the way lerobot's own decoder does.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

DEFAULT_CRF = 18  # x264 constant quality: visually lossless for these small frames
KEYFRAME_INTERVAL_S = 2.0  # a reader seeks to the keyframe before an episode's first frame, then decodes forward


class VideoFormatError(ValueError):
    pass


class Mp4Writer:
    """Appends RGB frames, episode after episode, to one MP4 file; ``frames_written / fps`` is where the next
    frame will sit (an episode's from_timestamp)."""

    def __init__(self, path: Path, fps: int, width: int, height: int, crf: int = DEFAULT_CRF) -> None:
        if width % 2 or height % 2:
            raise VideoFormatError(f"yuv420p video needs even frame sides, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = int(fps)
        self.frames_written = 0
        self._container = av.open(str(self.path), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        # Frames carry the codec's time base, 1/fps; the muxer picks its own stream time base once the header is
        # written (e.g. 1/10240), so stream.time_base cannot stand for the frames' clock.
        self._frame_time_base = Fraction(1, self.fps)
        self._stream.codec_context.time_base = self._frame_time_base
        self._stream.options = {"crf": str(int(crf)), "g": str(max(1, round(KEYFRAME_INTERVAL_S * self.fps)))}

    @property
    def position_s(self) -> float:
        return self.frames_written / self.fps

    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6 if self.path.exists() else 0.0

    def write(self, frames: np.ndarray) -> None:
        """(T,H,W,3) uint8 RGB."""
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = self._frame_time_base
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1

    def close(self) -> None:
        for packet in self._stream.encode(None):  # flush the encoder's look-ahead
            self._container.mux(packet)
        self._container.close()


def video_feature_info(path: Path, fps: int) -> dict:
    """The "info" block of a video feature in meta/info.json, probed from the file as lerobot does."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        return {
            "video.height": context.height,
            "video.width": context.width,
            "video.codec": context.codec.name,
            "video.pix_fmt": context.pix_fmt,
            "is_depth_map": False,  # lerobot >= 0.5 (older releases read "video.is_depth_map")
            "video.fps": int(fps),
            "video.channels": 3,
            "has_audio": len(container.streams.audio) > 0,
        }


def read_frames_at(path: Path, timestamps_s: np.ndarray, tolerance_s: float) -> np.ndarray:
    """(N,H,W,3) uint8 RGB: for each requested time, the decoded frame whose presentation time is within
    ``tolerance_s`` of it. Seeks once to the keyframe before the first time and decodes forward to the last."""
    timestamps_s = np.asarray(timestamps_s, dtype=np.float64)
    if timestamps_s.size == 0:
        raise VideoFormatError("no timestamps requested")
    first, last = float(timestamps_s.min()), float(timestamps_s.max())
    found_ts: list[float] = []
    found: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        container.seek(max(0, int(first / stream.time_base) - 1), backward=True, any_frame=False, stream=stream)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            ts = float(frame.pts * stream.time_base)
            if ts < first - tolerance_s:
                continue
            found_ts.append(ts)
            found.append(frame.to_ndarray(format="rgb24"))
            if ts >= last - tolerance_s:
                break
    if not found:
        raise VideoFormatError(f"{path}: no frame at or after {first:.4f} s")
    decoded_ts = np.asarray(found_ts)
    nearest = np.abs(decoded_ts[None, :] - timestamps_s[:, None]).argmin(axis=1)
    error = np.abs(decoded_ts[nearest] - timestamps_s)
    if (error > tolerance_s).any():
        worst = int(error.argmax())
        raise VideoFormatError(
            f"{path}: no frame within {tolerance_s} s of {timestamps_s[worst]:.4f} s (nearest at "
            f"{decoded_ts[nearest[worst]]:.4f} s); the data and video timestamps disagree")
    return np.stack([found[index] for index in nearest])
