"""Fast DDS shared-memory files left behind by processes that died without shutting down.

Each participant of the graph owns a segment in /dev/shm (64 MiB with config/fastdds.xml, whose pages are RAM once
written) and ports with their mutexes. A process that exits normally (SIGINT/SIGTERM, as every rt1_ros node handles
them) removes its files; one that is SIGKILLed, crashes, or is stopped by a test's timeout leaves them, and /dev/shm
is memory: a machine that runs the test suite or kills camera drivers again and again slowly loses its RAM to them.

A file is a zombie when nobody holds its lock: Fast DDS keeps a ``flock`` on ``<name>_el`` (exclusive, the owner's)
and, for ports, ``<name>_sl`` (shared, every reader's) for as long as the segment or port is open, so a lock that
can be taken exclusively means its owner is gone. The segment files are ``fastdds_<16 hex digits>``, the ports
``fastdds_port<number>`` with a ``sem.fastdds_port<number>_mutex``; Fast DDS 2.x spells them ``fastrtps_``. Fast
DDS's own ``fastdds shm clean`` applies the same rule (it needs psutil, which this environment does not install).
A port file whose lock files are already gone cannot be judged this way and is left (52 KiB each).

Removal takes every lock of an owner and unlinks its files while holding them, so a process that opens a port of
the same number meanwhile (port numbers are reused within a domain) waits for the removal or finds the port gone,
never loses a port it has just opened.

    python -m rt1_ros.node.shared_memory            # list the zombie files
    python -m rt1_ros.node.shared_memory --remove   # and remove them
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

SHM_DIRECTORY = Path("/dev/shm")
# <prefix>_<16 hex digits>_el is a segment's lock; <prefix>_port<number>_el or _sl a port's.
LOCK_FILE = re.compile(r"^(?P<owner>(?:fastdds|fastrtps)_(?:port\d{1,5}|[0-9a-f]{16}))_(?:el|sl)$")
SEGMENT = re.compile(r"^(?:fastdds|fastrtps)_[0-9a-f]{16}$")


@contextlib.contextmanager
def _held(paths: list[Path]) -> Iterator[bool]:
    """Try to take every lock in ``paths`` exclusively without waiting; yields whether all were taken (then no live
    process holds any of them) and releases them on exit."""
    handles = []
    free = True
    try:
        for path in paths:
            try:
                handles.append(open(path, "rb"))  # read-only: never creates a lock file that has just gone
                fcntl.flock(handles[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held by a live process (BlockingIOError), gone, or not ours to open
                free = False
                break
        yield free
    finally:
        for handle in handles:
            handle.close()  # closing releases the lock


def _owners(directory: Path) -> tuple[set[str], dict[str, list[str]]]:
    try:
        names = set(os.listdir(directory))
    except FileNotFoundError:
        return set(), {}
    owners: dict[str, list[str]] = {}
    for name in names:
        match = LOCK_FILE.match(name)
        if match:
            owners.setdefault(match["owner"], []).append(name)
    return names, owners


def _files(owner: str, locks: list[str], names: set[str], directory: Path) -> list[Path]:
    return [directory / name for name in (owner, *locks, f"sem.{owner}_mutex") if name in names]


def is_segment(owner: str) -> bool:
    """Whether ``owner`` names a participant's segment (randomly named, never reopened by another process) rather
    than a port (numbered, reused)."""
    return bool(SEGMENT.match(owner))


def _dead_owners(directory: Path, include: Callable[[str], bool] = lambda owner: True) -> Iterator[list[Path]]:
    """For each owner in ``directory`` that ``include`` accepts and no live process holds: its files, yielded while
    this process holds all its locks (so what the caller does with them happens under the locks)."""
    names, owners = _owners(directory)
    for owner, locks in owners.items():
        if not include(owner):
            continue
        with _held([directory / lock for lock in locks]) as free:
            if free:
                yield _files(owner, locks, names, directory)


def zombie_files(directory: Path = SHM_DIRECTORY) -> list[Path]:
    """The files of every segment and port in ``directory`` whose locks no live process holds, sorted."""
    return sorted(path for files in _dead_owners(directory) for path in files)


def remove_zombie_files(directory: Path = SHM_DIRECTORY, segments_only: bool = False,
                        keep: frozenset[str] = frozenset()) -> list[Path]:
    """Remove the zombie files in ``directory``, each owner's while holding all its locks; returns those removed.
    ``segments_only`` leaves the ports (what a test run removes: segments are its processes' own, ports are shared
    by number with whatever else runs); ``keep`` names owners (segment or port file names) to leave."""
    def include(owner: str) -> bool:
        return owner not in keep and (is_segment(owner) or not segments_only)

    removed: list[Path] = []
    for files in _dead_owners(directory, include):
        for path in files:
            try:
                path.unlink()
            except OSError:  # removed meanwhile, or another user's in the sticky /dev/shm
                continue
            removed.append(path)
    return sorted(removed)


def _resident_bytes(paths: list[Path]) -> int:
    """Memory the files use (the pages written, not their nominal size)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_blocks * 512
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rt1_ros.node.shared_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--directory", type=Path, default=SHM_DIRECTORY)
    parser.add_argument("--remove", action="store_true", help="remove the zombie files, not only list them")
    args = parser.parse_args(argv)
    found = zombie_files(args.directory)
    size = _resident_bytes(found)
    paths = remove_zombie_files(args.directory) if args.remove else found
    for path in paths:
        print(path)
    verb = "removed" if args.remove else "found"
    print(f"{verb} {len(paths)} zombie Fast DDS files (about {size / 2**20:.0f} MiB of memory)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
