"""rt1-train's command line, and `python -m rt1_ros.training` (what the Makefile's `make model` runs)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rt1_ros.training.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_cli_runs_a_few_steps(dataset, fast, tmp_path, capsys):
    assert main(["--data", str(dataset), "--output", str(tmp_path / "cli"), "--no-progress",
                 "--set", *fast, "total_steps=3"]) == 0
    assert "node-loadable checkpoint" in capsys.readouterr().out
    assert (tmp_path / "cli" / "best" / "config.yaml").is_file()


def test_python_dash_m_rt1_ros_train_is_the_cli():
    result = subprocess.run([sys.executable, "-m", "rt1_ros.training", "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: rt1-train") and "--resume" in result.stdout
