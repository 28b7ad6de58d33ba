"""LoadTracker: what a gateway knows about load on each node from its own traffic.

Outstanding (dispatched, not yet answered) requests per node and a peak-sensitive EWMA of
observed latency.  Load-aware strategies (the fixed LeastConnections, ``least_outstanding``,
``power_of_two_choices``, ``peak_ewma``, ``bounded_load_consistent_hash``) read it; the
reference's strategies ignore it.
"""

from __future__ import annotations

import math
from typing import Optional

from .duration import NS_PER_MS, seconds
from .types import NodeId

_exp = math.exp


class LoadTracker:
    """Per-node outstanding counts and peak-EWMA latency, as one gateway observes them."""

    __slots__ = ("outstanding", "_ewma_ms", "_stamp", "decay_ns", "latency")

    def __init__(self, decay: int = seconds(10), latency: bool = True) -> None:
        self.outstanding: dict[NodeId, int] = {}
        self._ewma_ms: dict[NodeId, float] = {}
        self._stamp: dict[NodeId, int] = {}
        self.decay_ns = decay
        self.latency = latency
        """Whether :meth:`finished` feeds the latency EWMA.  A router that builds its own
        tracker turns it on only for a strategy that reads it (``Strategy.reads_latency``):
        the EWMA then starts from that strategy's first request, as a new tracker's would."""

    def started(self, node_id: str) -> None:
        self.outstanding[node_id] = self.outstanding.get(node_id, 0) + 1

    def finished(self, node_id: str, latency_ns: int, now_ns: int) -> None:
        outstanding = self.outstanding
        n = outstanding.get(node_id, 0)
        if n > 0:
            outstanding[node_id] = n - 1
        if self.latency:
            self.observe(node_id, latency_ns, now_ns)

    def observe(self, node_id: str, latency_ns: int, now_ns: int) -> None:
        """Peak EWMA (as in Finagle/Linkerd): jump up to a slower sample at once, decay
        toward faster ones with time constant ``decay_ns``."""
        rtt = latency_ns / NS_PER_MS
        ewma = self._ewma_ms
        prev = ewma.get(node_id)
        if prev is None or rtt > prev:
            ewma[node_id] = rtt
        else:
            dt = now_ns - self._stamp.get(node_id, now_ns)
            w = _exp(-(dt if dt > 0 else 0) / self.decay_ns)
            ewma[node_id] = prev * w + rtt * (1.0 - w)
        self._stamp[node_id] = now_ns

    def count(self, node_id: str) -> int:
        return self.outstanding.get(node_id, 0)

    def ewma_ms(self, node_id: str) -> Optional[float]:
        return self._ewma_ms.get(node_id)

    def peak_ewma_cost(self, node_id: str, now_ns: int) -> float:
        """``ewma * (outstanding + 1)``; the EWMA decays toward 0 while idle.  A node with
        no sample yet costs ``outstanding`` (so unloaded new nodes are tried first)."""
        pending = self.outstanding.get(node_id, 0)
        ewma = self._ewma_ms.get(node_id)
        if ewma is None:
            return float(pending)
        dt = max(now_ns - self._stamp[node_id], 0)
        ewma *= math.exp(-dt / self.decay_ns)
        return ewma * (pending + 1)

    def total(self, nodes) -> int:
        get = self.outstanding.get
        return sum(get(n, 0) for n in nodes)
