"""A lightweight SimPy process for the per-request hot path.

``simpy.Process`` costs three events per request beyond the ones the request waits on: an
``Initialize`` event to start it, and its own triggering when it ends (a no-op when nobody
waits for it).  A :class:`Task` drives the same kind of generator (yield SimPy events, get
their values, have failures thrown in, be interrupted) without them, and keeps the event
order exactly as a ``Process`` would have it:

* it starts at once when no urgent event is due at this instant (an ``Initialize`` would
  have run next, before any normal event), and otherwise through an urgent start event,
  exactly like ``Initialize``;
* nobody can wait for a Task, so its end schedules nothing (the ``Process`` event it
  replaces had no callbacks: dropping a no-op event leaves the order of all others as is);
  an ``on_exit(context, value, error)`` callback, if given, is called at once instead with
  the generator's return value, or the exception it raised (then not propagated: the
  callback decides), which spares a wrapping generator whose only job is to catch and
  record;
* :meth:`interrupt` schedules the same urgent interruption a ``Process`` would get.

The contract that makes this exact: create a Task as the *last* thing its creator does
before it yields (schedule your own next event first, then start the Task), so the Task's
first step runs where ``Initialize`` would have run it.  Use it only for generators nobody
waits on (open-loop requests); closed-loop clients wait for their request and keep using
``env.process``.  tests/world/test_task.py checks the equivalence on random programs.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Optional

import simpy
from simpy.events import PENDING, URGENT, Event

_Interrupt = simpy.Interrupt


class Task:
    """Drive ``generator`` as a process nobody waits on (see the module docstring)."""

    __slots__ = ("env", "_generator", "_target", "_value", "_resume_cb", "_on_exit", "_context")

    def __init__(self, env: simpy.Environment, generator: Generator[Event, Any, Any],
                 on_exit: Optional[Callable[[Any, Any, Optional[Exception]], None]] = None,
                 context: Any = None) -> None:
        self.env = env
        self._generator = generator
        self._on_exit = on_exit
        self._context = context
        self._value: Any = PENDING
        self._target: Optional[Event] = None
        self._resume_cb = self._step  # resumed with the event it waited for
        queue = env._queue
        if queue and queue[0][0] == env._now and queue[0][1] == URGENT:
            # An urgent event is due now: start after it, where Initialize would.
            start = Event(env)
            start.callbacks.append(self._start)
            start._ok = True
            start._value = None
            env.schedule(start, URGENT)
            self._target = start
        else:
            self._step(None)

    @property
    def is_alive(self) -> bool:
        return self._value is PENDING

    @property
    def target(self) -> Optional[Event]:
        return self._target

    def interrupt(self, cause: Any = None) -> None:
        """Throw ``simpy.Interrupt(cause)`` into the generator, via an urgent event at
        this instant (as ``Process.interrupt``)."""
        if self._value is not PENDING:
            raise RuntimeError(f"{self!r} has terminated and cannot be interrupted.")
        if self is self.env.active_process:
            raise RuntimeError("A process is not allowed to interrupt itself.")
        ev = Event(self.env)
        ev.callbacks.append(self._interrupted)
        ev._value = _Interrupt(cause)
        ev._ok = False
        ev._defused = True
        self.env.schedule(ev, URGENT)

    def _interrupted(self, event: Event) -> None:
        if self._value is not PENDING:
            return
        self._target.callbacks.remove(self._resume_cb)
        self._step(event)

    def _start(self, event: Event) -> None:
        self._step(None)

    def _step(self, event: Optional[Event]) -> None:
        env = self.env
        previous = env._active_proc
        env._active_proc = self
        gen = self._generator
        try:
            while True:
                try:
                    if event is None:
                        event = next(gen)
                    elif event._ok:
                        event = gen.send(event._value)
                    else:
                        event._defused = True
                        exc = type(event._value)(*event._value.args)
                        exc.__cause__ = event._value
                        event = gen.throw(exc)
                except StopIteration as stop:
                    self._finish(stop.value, None)
                    return
                except Exception as exc:
                    if self._on_exit is None:
                        raise
                    self._finish(None, exc)
                    return
                callbacks = event.callbacks
                if callbacks is not None:
                    callbacks.append(self._resume_cb)
                    self._target = event
                    return
                # an already processed event: continue at once, as Process does
        finally:
            env._active_proc = previous

    def _finish(self, value: Any, error: Optional[Exception]) -> None:
        self._value = value
        # Break the Task <-> bound-method cycle so reference counting frees the request at
        # once (otherwise millions of requests wait for the cyclic GC).
        self._target = self._generator = self._resume_cb = None
        on_exit, context = self._on_exit, self._context
        if on_exit is not None:
            self._on_exit = self._context = None
            on_exit(context, value, error)

    def __repr__(self) -> str:
        return f"Task({getattr(self._generator, '__name__', '?')})"
