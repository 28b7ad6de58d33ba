"""Injectable time sources.

Every clock reading of the router goes through a :class:`Clock` (integer nanoseconds), so
the same code runs against wall time, a hand-driven :class:`ManualClock` in tests, or the
simulation clock of :mod:`fedsim.world`.  ``sleep`` is part of the clock so a driver that
owns time (a test, a simulator) can make backoff sleeps advance it.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol, runtime_checkable

EpochSource = Callable[[], int]
"""Returns wall-clock nanoseconds since the Unix epoch (only WeightedRandom reads it, spec §6.4)."""


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock in integer nanoseconds."""

    def now_ns(self) -> int: ...

    def sleep(self, duration_ns: int) -> None: ...


class WallClock:
    """Real monotonic time; ``sleep`` really sleeps.  The default for library use."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep(self, duration_ns: int) -> None:
        if duration_ns > 0:
            time.sleep(duration_ns / 1e9)

    def __repr__(self) -> str:
        return "WallClock()"


class ManualClock:
    """A clock that only moves when told to; ``sleep`` advances it instantly.

    ``epoch_ns`` gives a matching epoch reading (``epoch_base_ns + now``) for WeightedRandom.
    """

    __slots__ = ("_now", "epoch_base_ns")

    def __init__(self, start_ns: int = 0, epoch_base_ns: int = 0) -> None:
        if start_ns < 0:
            raise ValueError("a clock cannot start before 0 ns")
        self._now = int(start_ns)
        self.epoch_base_ns = int(epoch_base_ns)

    def now_ns(self) -> int:
        return self._now

    def advance(self, duration_ns: int) -> int:
        """Move forward by ``duration_ns`` and return the new reading."""
        if duration_ns < 0:
            raise ValueError(f"a monotonic clock cannot go back ({duration_ns} ns)")
        self._now += int(duration_ns)
        return self._now

    def set(self, now_ns: int) -> None:
        """Jump to an absolute reading (not earlier than the current one)."""
        if now_ns < self._now:
            raise ValueError(f"a monotonic clock cannot go back from {self._now} to {now_ns} ns")
        self._now = int(now_ns)

    sleep = advance

    def epoch_ns(self) -> int:
        return self.epoch_base_ns + self._now

    def __repr__(self) -> str:
        return f"ManualClock(now_ns={self._now})"


WALL_CLOCK = WallClock()


def wall_epoch_ns() -> int:
    """Nanoseconds since the Unix epoch from the system clock (the reference's source)."""
    return time.time_ns()
