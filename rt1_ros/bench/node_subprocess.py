"""rt1_node in its own process, as on a robot, for the benches that measure it from outside (node, node_cpu).

A context manager: the node starts with the given parameters in its own namespace, logs to a temporary file (read
back for errors and its start-up line), and is stopped with SIGTERM (its own shutdown: zero command, lifecycle), killed
only if it has not exited after 30 s, and the log removed. If the bench itself is killed (a test's timeout sends
SIGKILL, which runs no cleanup), Linux sends the node SIGTERM as its parent dies, so no node outlives the bench.
SIGTERM, not SIGINT, both times: a shell starts background jobs with SIGINT ignored, and a child still starting up
(before its own handlers) would lose it; rt1_node and the camera stop on SIGTERM as on SIGINT.
Linux ties that signal to the thread that started the child: start these from a thread that lives as long as the
bench (the benches use their main thread).
"""
from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
import tempfile
from typing import Mapping

_PR_SET_PDEATHSIG = 1
try:  # looked up here, in the parent: between fork and exec the child should only make the call
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def interrupt_when_parent_dies(parent_pid: int | None = None) -> None:
    """A preexec_fn (runs in the child between fork and exec); ``parent_pid``: os.getpid() of the starting process,
    for a parent that died before the call (the child then interrupts itself). Nothing where prctl does not exist."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


class NodeProcess:
    def __init__(self, namespace: str, parameters: Mapping[str, object], log_prefix: str = "rt1_bench_node_") -> None:
        self.namespace = namespace
        self._command = [sys.executable, "-m", "rt1_ros.node.rt1_node", "--ros-args", "-r", f"__ns:={namespace}"]
        for key, value in parameters.items():
            self._command += ["-p", f"{key}:={value}"]
        self._log_prefix = log_prefix
        self._log = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "NodeProcess":
        self._log = tempfile.NamedTemporaryFile("w+", prefix=self._log_prefix, suffix=".log", delete=False)
        self._process = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                         preexec_fn=functools.partial(interrupt_when_parent_dies, os.getpid()))
        return self

    def __exit__(self, *exc_info) -> None:
        stop_processes([self._process])
        self._log.close()
        os.unlink(self._log.name)

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        """None while the node runs, else its exit status."""
        return self._process.poll()

    def log_text(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def log_tail(self, characters: int = 1500) -> str:
        return self.log_text()[-characters:]

    def backend(self) -> str:
        """What the node's start-up line says it runs on ("... on cpu (openvino)"); "?" before that line."""
        for line in self.log_text().splitlines():
            if " on cpu (" in line:
                return line.rsplit(" on cpu (", 1)[1].split(")")[0]
        return "?"


def stop_processes(processes: list[subprocess.Popen | None]) -> None:
    """SIGTERM to each first (several then shut down side by side), then wait for each; kill one that has not exited
    in 30 s."""
    running = [p for p in processes if p is not None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
