"""`make demo` end to end, shortened: both nodes over real topics, an episode, and the report files."""
import json

import pytest

pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from rt1_ros.demo import main  # noqa: E402


def test_demo_runs_an_episode_and_writes_its_report(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["--model-size", "tiny", "--max-steps", "3", "--device", "cpu", "--output", str(output),
                 "--checkpoint", "", "--timeout-s", "120"]) == 0
    assert "UNTRAINED POLICY" in capsys.readouterr().out
    summary = json.loads((output / "summary.json").read_text())
    assert summary["trained"] is False and summary["end_reason"] != "timeout"
    assert 1 <= summary["steps"] <= 3 and summary["inference_ms_median"] > 0
    assert (output / "episode.mp4").stat().st_size > 0 and (output / "actions.png").stat().st_size > 0
