"""A hard timeout under pytest-timeout's, for a test deadlocked while holding the GIL.

pytest-timeout's thread method fires from a Python thread: it needs the GIL to run. A test stuck in a native call
that keeps the GIL would never let it run, and the suite would hang until CI's own limit, printing nothing.
faulthandler's watchdog is a C thread: ``hard_timeout_grace`` seconds after pytest-timeout should have fired, it
writes every Python thread's stack to the terminal's stderr and exits the process, without the GIL. Loaded by
pytest.ini (``-p hard_timeout``); armed and disarmed with pytest-timeout's own timer, so the per-test limit
(``timeout`` ini value, ``--timeout``, ``@pytest.mark.timeout``) stays the one setting.
"""
from __future__ import annotations

import contextlib
import faulthandler
import os

import pytest

_STDERR_FD = pytest.StashKey[int]()


def pytest_addoption(parser):
    parser.addini("hard_timeout_grace", type="float", default=60.0,
                  help="seconds after a test's pytest-timeout limit at which faulthandler dumps the stacks and exits")


def pytest_configure(config):
    # A copy of the terminal's stderr, taken while capture is off: during a test fd 2 is pytest's capture file, which
    # nobody reads once the process has exited.
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        config.stash[_STDERR_FD] = os.dup(2)


def pytest_unconfigure(config):
    faulthandler.cancel_dump_traceback_later()
    os.close(config.stash[_STDERR_FD])


@pytest.hookimpl(wrapper=True, optionalhook=True)  # pytest-timeout's hook: absent with -p no:timeout
def pytest_timeout_set_timer(item, settings):
    grace = item.config.getini("hard_timeout_grace")
    faulthandler.dump_traceback_later(settings.timeout + grace, exit=True, file=item.config.stash[_STDERR_FD])
    return (yield)


@pytest.hookimpl(wrapper=True, optionalhook=True)  # pytest-timeout's hook: absent with -p no:timeout
def pytest_timeout_cancel_timer(item):
    faulthandler.cancel_dump_traceback_later()
    return (yield)
