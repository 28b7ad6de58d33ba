"""The world's SimPy environment: ``simpy.Environment`` with its event loop inlined.

A simulated request costs about two events (its arrival and the end of its service), so
SimPy's per-event overhead counts.  :meth:`Environment.run` does what ``simpy``'s ``run``
does, with the body of ``step`` in its loop instead of one method call per event, and
:meth:`Environment.timeout` schedules its ``Timeout`` directly instead of through
``Timeout.__init__`` and ``schedule``.  Events, priorities and the event id counter are
SimPy's own, so the order of events is exactly SimPy's (tests/world/test_environment.py
runs random programs on both).  Everything else (``step``, ``process``, ``event``, conditions,
resources) is inherited unchanged.

The loop mirrors SimPy 4.1's ``Environment.run`` and ``step`` (MIT licence); with another
major version of SimPy installed, ``run`` is SimPy's own.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Optional, Union

import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, URGENT, Event, EventPriority, Timeout

_new_timeout = Timeout.__new__
_MIRRORED = simpy.__version__.split(".")[0] == "4"
"""Whether the installed SimPy is the major version whose loop ``run`` mirrors."""


class Environment(simpy.Environment):
    """``simpy.Environment`` with a faster ``run`` loop and ``timeout`` (same event order)."""

    def __init__(self, initial_time: Union[int, float] = 0) -> None:
        super().__init__(initial_time)
        # simpy binds its BoundClass shortcuts (process, event, ...) on the instance only
        # for attributes of the instance's own class; do it for the inherited ones too, or
        # each call would go through the descriptor.
        for name in ("process", "event", "all_of", "any_of"):
            setattr(self, name, getattr(self, name))
        if not _MIRRORED:
            self.run = super().run  # type: ignore[method-assign]

    def timeout(self, delay: Union[int, float], value: Optional[Any] = None) -> Timeout:
        """``Timeout(self, delay, value)``, scheduled exactly as its ``__init__`` does."""
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        ev = _new_timeout(Timeout)
        ev.env = self
        ev.callbacks = []
        ev._value = value
        ev._delay = delay
        ev._ok = True
        heappush(self._queue, (self._now + delay, NORMAL, next(self._eid), ev))
        return ev

    def run(self, until: Optional[Union[int, float, Event]] = None) -> Optional[Any]:
        """As ``simpy.Environment.run``, with ``step`` inlined in the loop."""
        if until is not None:
            if not isinstance(until, Event):
                at = until if isinstance(until, int) else float(until)
                if at <= self.now:
                    raise ValueError(
                        f"until ({at}) must be greater than the current simulation time")
                until = Event(self)
                until._ok = True
                until._value = None
                self.schedule(until, URGENT, at - self.now)
            elif until.callbacks is None:
                return until.value
            until.callbacks.append(StopSimulation.callback)
        queue = self._queue
        try:
            while True:
                # -- simpy.Environment.step, inlined --
                try:
                    self._now, _, _, event = heappop(queue)
                except IndexError:
                    raise EmptySchedule from None
                callbacks, event.callbacks = event.callbacks, None
                try:
                    for callback in callbacks:
                        callback(event)
                except StopSimulation:
                    event.callbacks = callbacks[callbacks.index(callback) + 1:]
                    self.schedule(event, EventPriority(-1))
                    raise
                if not event._ok and not hasattr(event, "_defused"):
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as exc:
            return exc.args[0]
        except EmptySchedule:
            if until is not None:
                assert not until.triggered
                raise RuntimeError(
                    f'No scheduled events left but "until" event was not triggered: {until}'
                ) from None
        return None
