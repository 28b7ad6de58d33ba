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

While it runs, Python's cyclic garbage collector collects its youngest generation less often
(:func:`relaxed_gc`): a run allocates millions of objects (requests, events, rows) that
reference counting frees or that live until their chunk is recorded, so the collector's
passes find almost nothing.  With Python's defaults the 300-second world of
benchmarks/world.py made about 120 passes, one of them over the whole heap (imported
libraries included), 50-70 ms of a 0.9-second run; relaxed, one or two.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from heapq import heappop, heappush
from typing import Any, Iterator, Optional, Union

import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, URGENT, Event, EventPriority, Timeout

_new_timeout = Timeout.__new__
_MIRRORED = simpy.__version__.split(".")[0] == "4"
"""Whether the installed SimPy is the major version whose loop ``run`` mirrors."""

GC_YOUNG_THRESHOLD: Optional[int] = 20_000
"""The collector's young-generation threshold while an :class:`Environment` runs in the main
thread (Python's default is 700); None leaves the collector as it is.  Cycles are still
collected, after 20,000 net allocations instead of 700, so the garbage they hold stays
bounded."""

_gc_lock = threading.Lock()
_gc_runs = 0
_gc_saved: Optional[tuple[int, ...]] = None


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Raise the collector's young-generation threshold to :data:`GC_YOUNG_THRESHOLD` (never
    lower it) for the block; the settings in place before are restored when the last of
    nested blocks ends.

    Only in the main thread: the collector's settings belong to the whole process, and a
    run in another thread is a guest of a host that may manage them (a Dask worker runs
    tasks in threads).  Relaxing it from Dask task threads made a
    sweep client on that cluster die of Ctrl-C instead of cancelling its runs
    (tests/cli/test_sweep_executors.py); the mechanism was not pinned down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _gc_runs, _gc_saved
    with _gc_lock:
        if _gc_runs == 0:
            _gc_saved = gc.get_threshold()
            young = GC_YOUNG_THRESHOLD
            if young is not None and 0 < _gc_saved[0] < young:
                gc.set_threshold(young, *_gc_saved[1:])
        _gc_runs += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_runs -= 1
            if _gc_runs == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)
                _gc_saved = None


class Environment(simpy.Environment):
    """``simpy.Environment`` with a faster ``run`` loop and ``timeout`` (same event order)."""

    def __init__(self, initial_time: Union[int, float] = 0) -> None:
        super().__init__(initial_time)
        # simpy binds its BoundClass shortcuts (process, event, ...) on the instance only
        # for attributes of the instance's own class; do it for the inherited ones too, or
        # each call would go through the descriptor.
        for name in ("process", "event", "all_of", "any_of"):
            setattr(self, name, getattr(self, name))

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
        """As ``simpy.Environment.run``, with ``step`` inlined in the loop (SimPy's own with
        another major version), under :func:`relaxed_gc`."""
        with relaxed_gc():
            if not _MIRRORED:
                return simpy.Environment.run(self, until)
            return self._run(until)

    def _run(self, until: Optional[Union[int, float, Event]]) -> Optional[Any]:
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
