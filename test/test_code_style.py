"""Lint gate: `ruff check` (configuration in ruff.toml) over the Python code of the repository."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LINTED = ("rt1_ros", "test", "launch", "scripts")


def test_ruff_check_is_clean():
    targets = [name for name in LINTED if (REPO_ROOT / name).exists()]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", *targets],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "No module named ruff" in result.stderr:
        raise AssertionError("ruff is not installed: run `make setup` (ruff is pinned in requirements.txt)")
    assert result.returncode == 0, (
        f"ruff check found problems (fix them, or `ruff check --fix {' '.join(targets)}`):\n"
        f"{result.stdout}{result.stderr}"
    )
