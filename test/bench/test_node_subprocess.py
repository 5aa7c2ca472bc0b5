"""A process the benches start (rt1_node, the camera) does not outlive a bench that is killed outright."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(600)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_is_stopped_when_its_bench_is_killed():
    parent = textwrap.dedent(f"""
        import functools, os, subprocess, sys, time
        from rt1_ros.bench.node_subprocess import interrupt_when_parent_dies
        child = subprocess.Popen([sys.executable, "-c", {CHILD!r}],
                                 preexec_fn=functools.partial(interrupt_when_parent_dies, os.getpid()))
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    bench = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    with bench.stdout:
        line = bench.stdout.readline()
    assert line.strip().isdigit(), f"the bench stand-in did not start its child: {line!r}"
    child_pid = int(line)
    assert _alive(child_pid)
    exited = os.pidfd_open(child_pid)  # readable once the process has exited: waits for that event itself
    try:
        bench.send_signal(signal.SIGKILL)  # what a test's timeout does: no cleanup runs in the bench
        bench.wait()
        select.select([exited], [], [], 60)  # 60 s only bounds a child that never exits
    finally:
        os.close(exited)
    assert not _alive(child_pid), "the child outlived its killed parent"


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (its new parent, init, reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
