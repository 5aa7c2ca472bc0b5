"""Two processes under torchrun (gloo on CPU), as a multi-GPU run is started: they train together and stop together."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def test_torchrun_two_processes_share_one_stop_decision_under_a_time_budget(dataset, tmp_path, fast):
    # The run is ended by the time budget (the step count is out of reach) while rank 0 pauses to validate every
    # 2 steps: the case where processes used to stop after different step counts and hang in the last all-reduce.
    # The subprocess timeout is only a guard against that hang, not a speed requirement.
    output = tmp_path / "run"
    overrides = [o for o in fast if not o.startswith(("time_budget_min", "eval_every"))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "rt1_ros.train", "--data", str(dataset), "--output", str(output), "--device", "cpu",
               "--no-progress", "--set", *overrides, "total_steps=1000000", "time_budget_min=0.05", "eval_every=2",
               "num_threads=1"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "world size 2" in result.stdout
    state = json.loads((output / "latest" / "trainer_state.json").read_text())
    assert 0 < state["step"] < 1000000
    assert (output / "best" / "model.safetensors").is_file()
