"""The simulation clock seen by the router.

SimPy time in fedsim is integer nanoseconds, so every reading the router takes is exact
and the router's integer-ns arithmetic (spec Appendix A) needs no conversion.
"""

from __future__ import annotations

import simpy


class SimClock:
    """Reads ``env.now`` (integer ns).  ``sleep`` is refused: in the world, time passes by
    yielding SimPy events, never by blocking."""

    __slots__ = ("env", "epoch_base_ns")

    def __init__(self, env: simpy.Environment, epoch_base_ns: int = 1_700_000_000_000_000_000) -> None:
        self.env = env
        self.epoch_base_ns = epoch_base_ns

    def now_ns(self) -> int:
        return int(self.env._now)  # _now, not the property: read on every routing step

    def epoch_ns(self) -> int:
        """Simulated wall clock for the reference WeightedRandom draw (reproducible)."""
        return self.epoch_base_ns + int(self.env.now)

    def sleep(self, duration_ns: int) -> None:
        raise RuntimeError("SimClock cannot block; yield env.timeout(...) in a process instead")

    def __repr__(self) -> str:
        return f"SimClock(now_ns={int(self.env.now)})"


def ns(seconds: float) -> int:
    """Seconds (float) to integer ns, rounded to the nearest ns."""
    return int(round(seconds * 1e9))
