"""Fast DDS shared-memory files left behind by processes that died without shutting down.

Each participant of the graph owns a segment in /dev/shm (64 MiB with config/fastdds.xml, whose pages are RAM once
written) and ports with their mutexes. A process that exits normally (SIGINT/SIGTERM, as every rt1_ros node handles
them) removes its files; one that is SIGKILLed, crashes, or is stopped by a test's timeout leaves them, and /dev/shm
is memory: a machine that runs the test suite or kills camera drivers again and again slowly loses its RAM to them.

A file is a zombie when nobody holds its lock: Fast DDS keeps an exclusive ``flock`` on ``<name>_el`` (and on
``<name>_sl`` for ports) for as long as the owner has the segment or port open, so a lock that can be taken means
its owner is gone. The segment files are ``fastdds_<16 hex digits>``, the ports ``fastdds_port<number>`` with a
``sem.fastdds_port<number>_mutex``; Fast DDS 2.x spells them ``fastrtps_``. Fast DDS's own ``fastdds shm clean``
does the same (it needs psutil, which this environment does not install).

    python -m rt1_ros.node.shared_memory            # list the zombie files
    python -m rt1_ros.node.shared_memory --remove   # and remove them
"""
from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
from pathlib import Path

SHM_DIRECTORY = Path("/dev/shm")
# <prefix>_<16 hex digits>_el is a segment's lock; <prefix>_port<number>_el or _sl a port's.
LOCK_FILE = re.compile(r"^(?P<owner>(?:fastdds|fastrtps)_(?:[0-9a-f]{16}|port\d{1,5}))_(?:el|sl)$")


def is_locked(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock (an exclusive flock we cannot take without waiting)."""
    try:
        with open(path, "rb") as handle:  # read-only: never creates a lock file that has just gone
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return True  # unreadable or gone: not ours to judge
    return False


def zombie_files(directory: Path = SHM_DIRECTORY) -> list[Path]:
    """The files of every segment and port in ``directory`` whose locks no live process holds, sorted."""
    try:
        names = set(os.listdir(directory))
    except FileNotFoundError:
        return []
    owners: dict[str, list[str]] = {}
    for name in names:
        match = LOCK_FILE.match(name)
        if match:
            owners.setdefault(match["owner"], []).append(name)
    zombies: set[Path] = set()
    for owner, locks in owners.items():
        if any(is_locked(directory / lock) for lock in locks):
            continue
        related = [owner, *locks, f"sem.{owner}_mutex"]
        zombies.update(directory / name for name in related if name in names)
    return sorted(zombies)


def remove_zombie_files(directory: Path = SHM_DIRECTORY) -> list[Path]:
    """Remove the zombie files in ``directory``; returns those removed (one another process removed first is
    skipped)."""
    removed = []
    for path in zombie_files(directory):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rt1_ros.node.shared_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--directory", type=Path, default=SHM_DIRECTORY)
    parser.add_argument("--remove", action="store_true", help="remove the zombie files, not only list them")
    args = parser.parse_args(argv)
    paths = zombie_files(args.directory)
    size = sum(path.stat().st_size for path in paths if path.exists())
    for path in paths:
        print(path)
    if args.remove:
        paths = remove_zombie_files(args.directory)
    verb = "removed" if args.remove else "found"
    print(f"{verb} {len(paths)} zombie Fast DDS files ({size / 2**20:.0f} MiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
