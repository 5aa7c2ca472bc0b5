"""The operator's input to an rt1-trial run: the phase the run is in and the events (scene ready, stop, verdict,
...) that phase takes, from whichever thread they come."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass


@dataclass
class OperatorEvent:
    kind: str  # scene_ready | quit | stop | terminate | timeout | success | failure | skip
    time_ns: int = 0  # the trial node's clock when it happened


# What each phase listens to; anything else is refused with the phase named.
ACCEPTED = {"scene": {"scene_ready", "quit"}, "running": {"stop", "terminate", "timeout"},
            "verdict": {"success", "failure", "skip", "quit"}}


class OperatorInputs:
    """The phase the run is in and the events for it, from any thread (services, terminal, rt1_action, timer).

    Each phase has a token; an event is taken only for the phase it was offered in, so a late terminate or a
    button pressed twice can never count for the next episode."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.phase = "idle"
        self.token = 0
        self._events: queue.SimpleQueue[OperatorEvent] = queue.SimpleQueue()

    def enter(self, phase: str) -> int:
        with self._condition:
            self.phase = phase
            self.token += 1
            self._events = queue.SimpleQueue()
            return self.token

    def offer(self, event: OperatorEvent, token: int | None = None) -> tuple[bool, str]:
        """(accepted, why not) — accepted when the current phase (and ``token``, if given) listens to it."""
        with self._condition:
            if token is not None and token != self.token:
                return False, "that phase is over"
            if event.kind not in ACCEPTED.get(self.phase, ()):
                return False, f"the trial is in phase {self.phase!r}, which does not take {event.kind!r}"
            self._events.put(event)
            self._condition.notify_all()
            return True, ""

    def wait(self, token: int) -> OperatorEvent:
        with self._condition:
            while self.token == token:
                try:
                    return self._events.get_nowait()
                except queue.Empty:
                    self._condition.wait()
        raise RuntimeError("the phase ended while waiting for it")
