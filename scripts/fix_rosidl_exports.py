#!/usr/bin/env python3
"""Point the ROS wheels' rosidl Python export files at this interpreter's include directories.

The PyPI ROS 2 wheels ship ``share/<pkg>/cmake/export_<pkg>__rosidl_generator_pyExport.cmake`` files whose
``INTERFACE_INCLUDE_DIRECTORIES`` name the wheel builder's paths, e.g.::

    /opt/python/cp311-cp311/include/python3.11
    /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include

CMake refuses to import a target that "includes non-existent path", so building any package whose messages depend
on those packages (std_msgs, geometry_msgs, ...) stops at configure time. This script rewrites every include
directory of those targets that does not exist on this machine: a Python include directory becomes this
interpreter's ``sysconfig`` include directory, a numpy one becomes ``numpy.get_include()``. Existing paths are left
alone, so running it again changes nothing (idempotent); after a new numpy or a new virtual environment it repairs
the files again.

Usage: python fix_rosidl_exports.py [PREFIX ...]   (default: sys.prefix, i.e. the active virtual environment)
Exit status 1 if a missing path remains that it does not know how to map.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import sysconfig
from pathlib import Path

_PROPERTY = re.compile(r'(INTERFACE_INCLUDE_DIRECTORIES\s+")([^"]*)(")')


def _python_include() -> str:
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        raise SystemExit(
            f"fix_rosidl_exports: {include}/Python.h is missing; install the Python headers "
            "(Debian: apt-get install python3-dev) before building ROS interfaces"
        )
    return include


def _numpy_include() -> str:
    import numpy

    return numpy.get_include()


def _replacement(path: str, python_include: str, numpy_include: str) -> str | None:
    """The local directory for a missing include path, or None when it is not one we know."""
    normalised = path.replace("\\", "/").rstrip("/")
    if "numpy" in normalised and normalised.endswith("/include"):
        return numpy_include
    if re.search(r"/include/python3(\.\d+)?[a-z]*$", normalised):
        return python_include
    return None


def fix_file(path: Path, python_include: str, numpy_include: str) -> tuple[bool, list[str]]:
    """Rewrite one export file in place. Returns (changed, unknown missing paths)."""
    text = path.read_text()
    unknown: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        entries = [entry for entry in match.group(2).split(";") if entry]
        fixed = []
        for entry in entries:
            # Generator expressions and variables (e.g. ${_IMPORT_PREFIX}/include) are CMake's business.
            if "$" in entry or os.path.isdir(entry):
                fixed.append(entry)
                continue
            new = _replacement(entry, python_include, numpy_include)
            if new is None:
                unknown.append(entry)
                fixed.append(entry)
            else:
                fixed.append(new)
        deduplicated = list(dict.fromkeys(fixed))
        return match.group(1) + ";".join(deduplicated) + match.group(3)

    new_text = _PROPERTY.sub(rewrite, text)
    changed = new_text != text
    if changed:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new_text)
        os.replace(tmp, path)
    return changed, unknown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", type=Path, default=[Path(sys.prefix)])
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    args = parser.parse_args(argv)

    python_include = _python_include()
    numpy_include = _numpy_include()
    files: list[Path] = []
    for prefix in args.prefixes:
        files.extend(sorted(prefix.glob("share/*/cmake/export_*__rosidl_generator_pyExport.cmake")))

    changed_count = 0
    problems: list[str] = []
    for path in files:
        changed, unknown = fix_file(path, python_include, numpy_include)
        changed_count += changed
        problems.extend(f"{path}: {entry}" for entry in unknown)

    if not args.quiet:
        print(
            f"fix_rosidl_exports: {len(files)} export files, {changed_count} rewritten "
            f"(python include {python_include}, numpy include {numpy_include})"
        )
    for problem in problems:
        print(f"fix_rosidl_exports: missing include path left unchanged: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
