"""The network between regions: round-trip times, jitter and partitions."""

from __future__ import annotations

from typing import Optional

from .clock import ns


class Network:
    """One-way hop delays (half the round trip, plus jitter) and the set of partitioned
    region pairs.  Jitter is drawn by inverse CDF from a keyed uniform, so the same request
    attempt sees the same jitter whichever node it is routed to (common random numbers)."""

    __slots__ = ("_one_way", "intra_ns", "default_ns", "jitter", "partition_timeout_ns",
                 "_partitions")

    def __init__(self, rtt: dict[str, dict[str, float]], default_rtt: float,
                 intra_region_rtt: float, jitter=None, partition_timeout: float = 1.0) -> None:
        self._one_way: dict[tuple[str, str], int] = {}
        for a, row in rtt.items():
            for b, x in row.items():
                self._one_way[(a, b)] = self._one_way[(b, a)] = ns(x / 2)
        self.intra_ns = ns(intra_region_rtt / 2)
        self.default_ns = ns(default_rtt / 2)
        self.jitter = jitter
        self.partition_timeout_ns = ns(partition_timeout)
        self._partitions: dict[frozenset, int] = {}

    def base_one_way(self, src: str, dst: str) -> int:
        if src == dst:
            return self._one_way.get((src, dst), self.intra_ns)
        return self._one_way.get((src, dst), self.default_ns)

    def one_way(self, src: str, dst: str, u: Optional[float] = None) -> int:
        """Delay of one hop in ns; ``u`` (a uniform in (0, 1)) draws the jitter."""
        d = self.base_one_way(src, dst)
        if self.jitter is not None and u is not None:
            d += ns(max(self.jitter.ppf(u), 0.0))
        return d

    def partition(self, a: str, b: str) -> None:
        key = frozenset((a, b))
        self._partitions[key] = self._partitions.get(key, 0) + 1

    def heal(self, a: str, b: str) -> None:
        key = frozenset((a, b))
        n = self._partitions.get(key, 0) - 1
        if n > 0:
            self._partitions[key] = n
        else:
            self._partitions.pop(key, None)

    def is_partitioned(self, a: str, b: str) -> bool:
        return bool(self._partitions) and frozenset((a, b)) in self._partitions
