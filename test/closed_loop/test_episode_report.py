import json

import cv2
import numpy as np

from rt1_ros.closed_loop.episode_report import EpisodeLog, EpisodeStep, EpisodeSummary, overlay, write_report


def test_report_writes_video_plot_and_summary(tmp_path):
    rng = np.random.default_rng(0)
    log = EpisodeLog(instruction="pick up the red cube")
    for i in range(6):
        log.steps.append(EpisodeStep(sim_time_s=i / 3, frame=rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
                                     arm=np.array([0.01, 0, -0.02, 0, 0, 0.1, i > 3], float),
                                     base=np.zeros(3), mode=0 if i < 5 else 2, inference_ms=12.0))
    summary = EpisodeSummary(instruction=log.instruction, task_family="pick", seed=1, policy="test", trained=False,
                             steps=6, success=False, sim_time_s=2.0, wall_time_s=1.0, control_rate_hz_wall=6.0,
                             real_time_factor=2.0, inference_ms_median=12.0, inference_ms_p90=12.0,
                             end_reason="terminated")
    outputs = write_report(log, summary, tmp_path / "out", fps=3.0)
    video = cv2.VideoCapture(str(outputs["video"]))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 6
    plot = cv2.imread(str(outputs["plot"]))
    assert plot is not None and plot.shape[0] > 300
    assert json.loads(outputs["summary_json"].read_text())["steps"] == 6
    assert "pick up the red cube" in outputs["summary_md"].read_text()


def test_attention_maps_are_drawn_as_a_strip_under_the_frame():
    frame = np.full((300, 300, 3), 128, np.uint8)
    step = EpisodeStep(sim_time_s=0.0, frame=frame, arm=np.zeros(7), base=np.zeros(3), mode=0, inference_ms=1.0)
    plain = overlay(step, "pick up the red cube", 0)
    maps = np.zeros((8, 4, 4), np.float32)
    maps[:, 0, 0] = 1.0  # every token reads the top-left cell
    step.attention = maps
    drawn = overlay(step, "pick up the red cube", 0)
    side = plain.shape[1] // 8
    assert drawn.shape == (plain.shape[0] + side, plain.shape[1], 3)
    np.testing.assert_array_equal(drawn[:plain.shape[0]], plain)
    tile = drawn[plain.shape[0]:, :side].astype(float)  # token 0's thumbnail, RGB
    hot, cold = tile[:side // 5, :3], tile[-side // 4:, -side // 4:]  # left of the label / far corner
    assert hot[..., 0].mean() > cold[..., 0].mean() + 50  # red where the token reads
    assert cold[..., 2].mean() > cold[..., 0].mean() + 50  # blue where it does not
