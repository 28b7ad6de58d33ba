"""Load-balancing strategies, registered by name (spec §6.4 and the ``strategies`` fix).

A strategy picks one candidate from the router's *pool*: the ranked, eligible candidates
with ``total >= min_score``, truncated to ``max_candidates``, best first.  The reference's
five strategies keep their reference behaviour unless a fix says otherwise; the extra
strategies are fedsim's.  Add your own with :func:`register_strategy`.

Every random draw comes from the router's seeded ``rng`` (except the reference
WeightedRandom, which hashes an epoch-ns reading), so runs are reproducible.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from bisect import bisect_left
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Optional, Protocol, Sequence

from .siphash import weighted_random_r
from .types import InferenceRequest, LoadBalanceStrategy, NodeId, RouteCandidate

if TYPE_CHECKING:  # pragma: no cover
    from .router import Router


class Strategy(Protocol):
    """Picks a candidate from a non-empty pool.  ``router`` gives access to ``fixes``,
    ``rng``, ``epoch_ns()``, ``clock`` and ``load`` (a LoadTracker).

    Treat the pool and its candidates as read-only: the router's candidate index shares
    candidate objects between requests (:mod:`.index`).

    ``reads_latency`` (optional, True when absent): whether ``select`` reads the load
    tracker's latency EWMA; a router keeps that EWMA only for a strategy that reads it."""

    name: str

    def select(self, pool: Sequence[RouteCandidate], request: InferenceRequest,
               router: "Router") -> RouteCandidate: ...


StrategyFactory = Callable[[], Strategy]

STRATEGIES: dict[str, tuple[StrategyFactory, str]] = {}


def register_strategy(name: str, factory: StrategyFactory, description: str = "",
                      *, replace: bool = False) -> None:
    """Make a strategy usable by name in ``RouterConfig(strategy=name)``."""
    if name in STRATEGIES and not replace:
        raise ValueError(f"a strategy named {name!r} is already registered")
    STRATEGIES[name] = (factory, description)


def strategy_name(strategy: "LoadBalanceStrategy | str") -> str:
    return strategy.registry_name if isinstance(strategy, LoadBalanceStrategy) else strategy


def make_strategy(strategy: "LoadBalanceStrategy | str") -> Strategy:
    name = strategy_name(strategy)
    try:
        factory, _ = STRATEGIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(STRATEGIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown strategy {name!r}{hint} Known: {', '.join(STRATEGIES)}"
        ) from None
    return factory()


# --------------------------------------------------------------------------- helpers


def _distinct_nodes(pool: Sequence[RouteCandidate]) -> list[NodeId]:
    seen: dict[NodeId, None] = {}
    for c in pool:
        seen.setdefault(c.target.node_id, None)
    return list(seen)


def _first_for(pool: Sequence[RouteCandidate], node_id: str) -> RouteCandidate:
    for c in pool:
        if c.target.node_id == node_id:
            return c
    raise LookupError(node_id)  # pragma: no cover - callers pass nodes of the pool


def _min_by(pool: Sequence[RouteCandidate], key) -> RouteCandidate:
    """First candidate (best rank) with the smallest key."""
    best = pool[0]
    best_key = key(best)
    for c in pool[1:]:
        k = key(c)
        if k < best_key:
            best, best_key = c, k
    return best


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class HashRing:
    """A consistent-hash ring with ``vnodes`` points per node (blake2b-64 positions)."""

    __slots__ = ("points", "owners")

    def __init__(self, nodes: Sequence[str], vnodes: int = 64) -> None:
        pts = sorted((_hash64(f"{n}#{i}"), n) for n in nodes for i in range(vnodes))
        self.points = [p for p, _ in pts]
        self.owners = [n for _, n in pts]

    def walk(self, key: str):
        """Distinct nodes clockwise from the key's position."""
        n = len(self.points)
        i = bisect_left(self.points, _hash64(key))
        seen: set[str] = set()
        for k in range(n):
            owner = self.owners[(i + k) % n]
            if owner not in seen:
                seen.add(owner)
                yield owner

    def lookup(self, key: str) -> str:
        return next(self.walk(key))


class _RingCache:
    """Rings cached by node set, so a stable pool costs one bisect per request."""

    __slots__ = ("vnodes", "_rings")

    def __init__(self, vnodes: int = 64, size: int = 32) -> None:
        self.vnodes = vnodes
        self._rings: OrderedDict[frozenset, HashRing] = OrderedDict()

    def get(self, nodes: Sequence[str]) -> HashRing:
        key = frozenset(nodes)
        ring = self._rings.get(key)
        if ring is None:
            ring = HashRing(sorted(key), self.vnodes)
            self._rings[key] = ring
            if len(self._rings) > 32:
                self._rings.popitem(last=False)
        else:
            self._rings.move_to_end(key)
        return ring


# --------------------------------------------------------------------------- reference five


class LeastLatency:
    """Reference: the best-ranked candidate ("highest composite score", Q-LEASTLAT)."""

    name = "least_latency"
    reads_latency = False

    def select(self, pool, request, router):
        return pool[0]


class RoundRobin:
    """Reference: a stub equal to LeastLatency (Q-STUB-LB).  ``strategies`` fix: the
    least recently picked node of the pool (never-picked nodes first, in rank order), so a
    stable pool is visited in strict rotation."""

    name = "round_robin"
    reads_latency = False

    def __init__(self) -> None:
        self._last: dict[NodeId, int] = {}
        self._tick = 0

    def select(self, pool, request, router):
        if not router.fixes.strategies:
            return pool[0]
        last = self._last
        choice = _min_by(pool, lambda c: last.get(c.target.node_id, -1))
        self._tick += 1
        last[choice.target.node_id] = self._tick
        return choice


class LeastConnections:
    """Reference: a stub (Q-STUB-LB).  ``strategies`` fix: the node with the fewest
    outstanding requests at this gateway; ties go to the better-ranked node."""

    name = "least_connections"
    reads_latency = False

    def select(self, pool, request, router):
        if not router.fixes.strategies:
            return pool[0]
        count = router.load.count
        return _min_by(pool, lambda c: count(c.target.node_id))


class ConsistentHash:
    """Reference: a stub (Q-STUB-LB).  ``strategies`` fix: the request's ``hash_key``
    (session key, else request id) on a hash ring over the pool's nodes; when one of N nodes
    leaves, only about 1/N of keys move."""

    name = "consistent_hash"
    reads_latency = False

    def __init__(self, vnodes: int = 64) -> None:
        self._rings = _RingCache(vnodes)

    def select(self, pool, request, router):
        if not router.fixes.strategies:
            return pool[0]
        nodes = _distinct_nodes(pool)
        if len(nodes) == 1:
            return pool[0]
        return _first_for(pool, self._rings.get(nodes).lookup(request.hash_key))


class WeightedRandom:
    """Score-weighted draw (spec §6.4).  Reference: r = SipHash-1-3 of the epoch-ns reading
    (Q-WRANDOM); ``seeded_weighted_random`` fix: r from the router's seeded RNG."""

    name = "weighted_random"
    reads_latency = False

    def select(self, pool, request, router):
        total_weight = 0.0
        for c in pool:
            total_weight += c.scores.total
        if total_weight <= 0.0:
            return pool[0]
        if router.fixes.seeded_weighted_random:
            r = router.rng.random()
        else:
            r = weighted_random_r(router.epoch_ns())
        target = r * total_weight
        cumulative = 0.0
        for c in pool:
            cumulative += c.scores.total
            if cumulative >= target:
                return c
        return pool[-1]


# --------------------------------------------------------------------------- fedsim extras


class Random:
    """Uniformly random candidate of the pool (seeded)."""

    name = "random"
    reads_latency = False

    def select(self, pool, request, router):
        return pool[router.rng.randrange(len(pool))]


class PowerOfTwoChoices:
    """Two distinct random candidates; the one with fewer outstanding requests (ties: the
    better-ranked).  Mitzenmacher's power of two choices."""

    name = "power_of_two_choices"
    reads_latency = False

    def __init__(self, d: int = 2) -> None:
        self.d = d

    def select(self, pool, request, router):
        if len(pool) == 1:
            return pool[0]
        idx = sorted(router.rng.sample(range(len(pool)), min(self.d, len(pool))))
        count = router.load.count
        return _min_by([pool[i] for i in idx], lambda c: count(c.target.node_id))


class LeastOutstanding:
    """Join-shortest-queue on the gateway's own outstanding counts; ties broken uniformly
    at random (seeded), so idle nodes share load instead of the top-ranked taking it all."""

    name = "least_outstanding"
    reads_latency = False

    def select(self, pool, request, router):
        get = router.load.outstanding.get  # LoadTracker.count, inlined (hot path)
        best: list[RouteCandidate] = []
        best_n = math.inf
        for c in pool:
            n = get(c.target.node_id, 0)
            if n < best_n:
                best, best_n = [c], n
            elif n == best_n:
                best.append(c)
        n = len(best)
        if n == 1:
            return best[0]
        # rng.randrange(n), spelled out (three routes in four tie in a lightly loaded world):
        # CPython's rejection sampling over getrandbits(n.bit_length()), the same draws
        # without randrange's argument checks and two calls
        getrandbits = router.rng.getrandbits
        k = n.bit_length()
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return best[r]


class PeakEwma:
    """Lowest ``peak-EWMA latency x (outstanding + 1)`` (Finagle/Linkerd's cost); ties go to
    the better-ranked candidate."""

    name = "peak_ewma"
    reads_latency = True

    def select(self, pool, request, router):
        now = router.clock.now_ns()
        cost = router.load.peak_ewma_cost
        return _min_by(pool, lambda c: cost(c.target.node_id, now))


class BoundedLoadConsistentHash:
    """Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018): walk
    the ring from the key's position to the first node whose outstanding count is below
    ``ceil((1 + epsilon) * (total outstanding + 1) / nodes)``."""

    name = "bounded_load_consistent_hash"
    reads_latency = False

    def __init__(self, epsilon: float = 0.25, vnodes: int = 64) -> None:
        if epsilon <= 0:
            raise ValueError("epsilon must be positive")
        self.epsilon = epsilon
        self._rings = _RingCache(vnodes)

    def select(self, pool, request, router):
        nodes = _distinct_nodes(pool)
        if len(nodes) == 1:
            return pool[0]
        count = router.load.count
        capacity = math.ceil((1.0 + self.epsilon) * (router.load.total(nodes) + 1) / len(nodes))
        ring = self._rings.get(nodes)
        for node in ring.walk(request.hash_key):
            if count(node) < capacity:
                return _first_for(pool, node)
        return _first_for(pool, ring.lookup(request.hash_key))  # pragma: no cover - unreachable


for _cls, _desc in [
    (LeastLatency, "reference default: best composite score"),
    (RoundRobin, "reference: stub = least_latency; with 'strategies' fix: rotate over the pool"),
    (LeastConnections, "reference: stub = least_latency; with 'strategies' fix: fewest outstanding"),
    (WeightedRandom, "score-weighted draw (wall-clock hash; seeded with 'seeded_weighted_random')"),
    (ConsistentHash, "reference: stub = least_latency; with 'strategies' fix: hash ring on the request key"),
    (Random, "uniformly random member of the pool (seeded)"),
    (PowerOfTwoChoices, "two random candidates, the less loaded wins"),
    (LeastOutstanding, "join-shortest-queue on the gateway's outstanding counts"),
    (PeakEwma, "lowest peak-EWMA latency x (outstanding + 1)"),
    (BoundedLoadConsistentHash, "consistent hashing with bounded loads (epsilon 0.25)"),
]:
    register_strategy(_cls.name, _cls, _desc)
del _cls, _desc
