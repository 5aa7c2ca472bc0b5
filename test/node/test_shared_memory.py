"""Zombie Fast DDS shared-memory files: found by their free locks, removed without touching a live owner's."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

from rt1_ros.node.shared_memory import SHM_DIRECTORY, is_segment, main, remove_zombie_files, zombie_files

SEGMENT = "fastdds_0123456789abcdef"
LIVE_SEGMENT = "fastdds_fedcba9876543210"
PORT = "fastdds_port7412"


def _touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"x")


def test_only_files_without_a_live_lock_are_zombies(tmp_path):
    _touch(tmp_path, SEGMENT, f"{SEGMENT}_el", LIVE_SEGMENT, f"{LIVE_SEGMENT}_el",
           PORT, f"{PORT}_el", f"sem.{PORT}_mutex", "lttng-ust-wait-6", "fastdds_not_a_segment")
    with open(tmp_path / f"{LIVE_SEGMENT}_el", "ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what a running participant does with its segment's lock
        assert zombie_files(tmp_path) == sorted(tmp_path / name for name in (
            SEGMENT, f"{SEGMENT}_el", PORT, f"{PORT}_el", f"sem.{PORT}_mutex"))
        removed = remove_zombie_files(tmp_path)
    assert len(removed) == 5
    assert sorted(os.listdir(tmp_path)) == sorted([LIVE_SEGMENT, f"{LIVE_SEGMENT}_el", "lttng-ust-wait-6",
                                                   "fastdds_not_a_segment"])


def test_a_port_with_either_lock_held_is_alive(tmp_path):
    _touch(tmp_path, PORT, f"{PORT}_el", f"{PORT}_sl")
    with open(tmp_path / f"{PORT}_sl", "ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert zombie_files(tmp_path) == []
    assert len(zombie_files(tmp_path)) == 3


def test_a_test_run_removes_only_segments_and_not_those_it_keeps(tmp_path):
    other = "fastdds_00000000000000aa"
    _touch(tmp_path, SEGMENT, f"{SEGMENT}_el", other, f"{other}_el", PORT, f"{PORT}_el", f"sem.{PORT}_mutex")
    assert is_segment(SEGMENT) and not is_segment(PORT)
    assert remove_zombie_files(tmp_path, segments_only=True, keep=frozenset({other})) == [
        tmp_path / SEGMENT, tmp_path / f"{SEGMENT}_el"]
    assert sorted(os.listdir(tmp_path)) == sorted([other, f"{other}_el", PORT, f"{PORT}_el", f"sem.{PORT}_mutex"])


def test_a_lock_taken_between_listing_and_removal_keeps_the_files(tmp_path, monkeypatch):
    """Removal decides under the locks it holds, not on an earlier look: a port reopened meanwhile stays."""
    import rt1_ros.node.shared_memory as shared_memory

    _touch(tmp_path, PORT, f"{PORT}_el")
    listed = shared_memory._owners(tmp_path)
    with open(tmp_path / f"{PORT}_el", "rb") as reopened:
        fcntl.flock(reopened, fcntl.LOCK_EX)
        monkeypatch.setattr(shared_memory, "_owners", lambda directory: listed)
        assert remove_zombie_files(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == [PORT, f"{PORT}_el"]


def test_the_command_lists_without_removing_unless_asked(tmp_path, capsys):
    _touch(tmp_path, SEGMENT, f"{SEGMENT}_el")
    assert main(["--directory", str(tmp_path)]) == 0
    assert str(tmp_path / SEGMENT) in capsys.readouterr().out
    assert (tmp_path / SEGMENT).exists()
    assert main(["--directory", str(tmp_path), "--remove"]) == 0
    assert os.listdir(tmp_path) == []


def test_a_killed_participant_leaves_zombies_and_a_live_one_does_not():
    """The lock rule against the real middleware: the locks a participant holds are its segment's and ports'; none
    of its files is a zombie while it runs, and all are once it is SIGKILLed (which runs no cleanup). Discovery is
    off, so it maps no other participant's files."""
    environment = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="OFF")
    participant = subprocess.Popen(
        [sys.executable, "-c", "import rclpy, time\nrclpy.init()\nnode = rclpy.create_node('shm_owner')\n"
         "print('ready', flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True, env=environment)
    owned: set[Path] = set()
    try:
        assert participant.stdout.readline().strip() == "ready"
        locks = []
        for fd in Path(f"/proc/{participant.pid}/fd").iterdir():
            try:
                locks.append(Path(os.readlink(fd)))
            except FileNotFoundError:  # closed while listed
                continue
        locks = [path for path in locks if path.parent == SHM_DIRECTORY and path.name.endswith(("_el", "_sl"))]
        assert any(not path.name.startswith("fastdds_port") for path in locks), f"no segment lock held: {locks}"
        for lock in locks:
            owner = lock.name[:-3]
            owned |= {SHM_DIRECTORY / name for name in (owner, lock.name, f"sem.{owner}_mutex")}
        owned = {path for path in owned if path.exists()}
        assert not owned & set(zombie_files())
    finally:
        participant.send_signal(signal.SIGKILL)
        participant.wait(timeout=60)
    zombies = set(zombie_files())
    for path in owned & zombies:  # only what is still dead: a port number may have been taken up meanwhile
        path.unlink(missing_ok=True)
    assert owned <= zombies
