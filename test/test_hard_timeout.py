"""The suite's hard timeout (test/hard_timeout.py): a test that hangs holding the GIL ends the run with its stack
printed, where pytest-timeout's thread timer alone would wait for CI's limit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HANGING_TEST = '''
import ctypes


def test_holds_the_gil():
    # PyDLL calls keep the GIL: no Python thread (pytest-timeout's timer among them) runs until sleep returns.
    ctypes.PyDLL(None).sleep(600)
'''


def test_a_test_hanging_with_the_gil_held_ends_the_run_with_its_stack(tmp_path):
    (tmp_path / "test_hang.py").write_text(HANGING_TEST)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "hard_timeout", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-c", "/dev/null", "--rootdir", str(tmp_path), "-o", "timeout=1", "-o", "timeout_method=thread",
         "-o", "hard_timeout_grace=1", str(tmp_path / "test_hang.py")],
        # The hang itself would last 600 s; 120 s stays under the suite's own 300 s limit for this test.
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent)})
    assert run.returncode != 0
    assert "Timeout" in run.stderr and "test_holds_the_gil" in run.stderr, run.stderr[-2000:]
