"""Incremental candidate index: ``Router.route`` without rebuilding every candidate (issue 8).

The full path (spec §6.2-§6.4) builds, scores and sorts a candidate for every deployment of
the capability on every request, so its cost grows linearly with the fleet.  Almost none of
that work changes between requests: a candidate's score depends on its node's health and on
a few request fields.  This index keeps the ranked candidates between requests and touches
only what changed, making the same decisions as the full path, bit for bit.

How it stays exact
------------------
* **Request classes.**  Policies name the request fields they read (``request_key``, see
  :mod:`.policy`); the router adds the origin region when ``locality_from_origin`` makes it
  set the candidates' locality.  Requests with equal keys see identical candidates.
* **Per (capability, class)**, materialised on first use: one candidate per deployment,
  built and scored exactly as the full path builds and ranks it (same constructors, same
  ``policy.score`` call), the eligible ones in a list sorted by ``(-total, position)``, where
  position is the deployment's place in the full path's iteration order (catalog entry
  order, then deployment order).  That order is what the full path's stable sort by total,
  descending, produces.  Nodes that are Unhealthy have no candidate; ``present`` counts the
  others, so NoCapacity (no candidate at all) vs AllNodesUnhealthy (empty pool) is decided
  as before.  For N in the thousands a plain list with bisect insertion/removal (a C
  memmove) costs well under a microsecond; a rescored candidate that keeps its place is
  swapped in without shifting anything.
* **Health changes** reach the index through :attr:`HealthChecker.listeners`: a change of a
  node's registration, status, p50 or throughput appends the node to a change log.  Each
  class remembers how far into the log it is current and rescores the (distinct) logged
  nodes when it is next used, replacing their candidates with other objects (candidates
  already handed out are never mutated).  Deviation from "rescore every class on the next
  route": classes catch up lazily, so a class that is not used costs nothing and a node
  that changed several times is rescored once; a class lagging by more log entries than
  it has deployments is dropped when the log is trimmed and rebuilt on its next use.
* **Candidate cache.**  Within a class, a candidate is fully determined by its position
  (node, region, endpoint) and its node's status, p50 and throughput, and those values
  recur (a node's p50 moves among a few dozen whole milliseconds), so each class keeps
  the candidate (with its ranking entry) it built for each (position, status, p50,
  throughput) and hands that same object out again when they recur: equal values,
  without building three dataclasses and scoring.
* **Score memo** (built-in policies only, :func:`.policy.reads_only_standard_fields`): they
  read nothing of a candidate but what the router derives from (region, status, p50,
  throughput), so each class remembers the (eligibility, score) its policy gave for those
  values and reuses it: the value the same call returned, without the calls.
* **Catalog changes** (``ModelCatalog.version``) and policy changes (a different policy
  object, :data:`.policy.EPOCH`) drop everything; it is rebuilt lazily.  Replacing the
  router's catalog, health checker, breaker, policy or fixes drops the index.
* **Breakers.**  ``is_open`` of a Closed circuit is False without side effects, and so is
  that of a HalfOpen circuit unless ``half_open_single_probe`` is on.  The other circuits
  (Open, or HalfOpen under single-probe; tracked through :attr:`CircuitBreaker.listeners`)
  are asked on every route, once per deployment in position order, exactly as the full
  path asks them, so Open -> HalfOpen, an expired single-probe permit and
  ``eager_half_open`` happen at the same moments and are recorded in the same order.
  One shortcut: while the clock is before the earliest ``last_failure + reset_timeout``
  (``opened_at`` under ``eager_half_open``) of the Open circuits, and all asked circuits
  are Open, every answer is True with no side effect, so they are not asked (a failure
  recorded while Open only moves that time later, so the bound stays safe).  Deployments
  whose circuit is open are skipped while the pool is taken.
* **The pool** is the first ``max_candidates`` entries of the sorted list with
  ``total >= min_score`` (a prefix, since the list is sorted), minus open deployments and,
  with ``exclude``, minus excluded nodes unless nothing else is left, as ``Router.pool``
  does.  The strategy receives the same candidates in the same order as on the full path;
  ``Router.route`` returns a copy of the chosen target.
* **Bounds.**  At most ``_MAX_CLASSES`` classes per capability (least recently used
  dropped beyond), score memos cleared at ``_MEMO_SIZE`` entries, candidate caches at
  ``_CACHE_SIZE``, the change log trimmed past ``_LOG_TRIM`` entries.

Fallbacks to the full path (decided before any side effect, so the full path then behaves
exactly as it always did):

* the policy, or a member of a composite policy, has no ``request_key``;
* ``real_health_metrics`` is on (router's or health checker's fixes): throughput ages with
  the clock on every ``peek``, so a candidate can change without any report;
* a class has an eligible candidate whose total is NaN: Python's sort is then
  order-dependent and cannot be reproduced by sorted insertion;
* ``RouterConfig.incremental`` is False.

Known limits (documented contracts, not checked): policies must be pure functions of
candidate, request key and settings (see :mod:`.policy`); strategies must not mutate the
pool's candidates (they are shared with later requests); catalog entries, deployments,
health and breaker records must be changed only through their owners' methods.  A policy that raises raises
here before the breaker side effects rather than after them (the index stays consistent).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import TYPE_CHECKING, AbstractSet, Hashable, Optional

from .circuit import HALF_OPEN, OPEN
from .duration import NS_PER_MS
from .errors import NoCapacity
from .policy import EPOCH, reads_only_standard_fields, request_key_function
from .types import (
    DEFAULT_HEALTH_FOR_UNKNOWN_P50,
    Capability,
    CircuitState,
    HealthState,
    InferenceRequest,
    NodeId,
    RouteCandidate,
    RouteScores,
    RouteTarget,
)

if TYPE_CHECKING:  # pragma: no cover
    from .router import Router

_HEALTHY = HealthState.HEALTHY
_DEGRADED = HealthState.DEGRADED
_UNKNOWN = HealthState.UNKNOWN

_LOG_TRIM = 4096
"""Trim the change log when it grows past this many entries."""
_MAX_CLASSES = 256
"""Most request classes kept per capability; beyond, the least recently used are dropped."""
_MEMO_SIZE = 4096
"""Clear a class's score memo when it holds this many entries."""
_CACHE_SIZE = 4096
"""Clear a class's candidate cache when it holds this many entries (in the benchmark world
a node's p50 takes about 90 distinct values over a run)."""
_INELIGIBLE = object()


class _Class:
    """Candidates of one capability for one request class."""

    __slots__ = ("slots", "ranked", "order", "present", "nan", "cursor", "memo", "cache",
                 "used")

    def __init__(self, cursor: int) -> None:
        self.slots: list[Optional[tuple]] = []
        """Per position: None when the node is Unhealthy, else ``(candidate, entry, nan)``:
        ``entry`` is its ``ranked`` entry (None when ineligible or NaN), ``nan`` whether it
        is eligible with a NaN total."""
        self.ranked: list[tuple[float, int, RouteCandidate]] = []
        """(-total, position, candidate) of the eligible candidates with a non-NaN total,
        sorted: the full path's ranking order."""
        self.order: list[RouteCandidate] = []
        """The candidates of ``ranked``, in the same order (a pool is a slice of it)."""
        self.present = 0
        """Positions with a candidate (eligible or not)."""
        self.nan = 0
        """Eligible candidates whose total is NaN (then this class takes the full path)."""
        self.cursor = cursor
        """How far into the change log this class is current."""
        self.used = 0
        """``CandidateIndex.hits`` when last used (for eviction)."""
        self.memo: Optional[dict] = None
        """(region, health score, p50, throughput) -> score or _INELIGIBLE (built-in
        policies only)."""
        self.cache: dict[tuple, tuple] = {}
        """(position, health score, p50, throughput) -> slot built earlier for those values
        (they determine the candidate: see ``CandidateIndex._slot``)."""


class _Cap:
    """Deployments of one capability in the full path's order, and its classes."""

    __slots__ = ("deps", "node_pos", "classes", "nc_version", "nc_positions", "nc_open",
                 "nc_all_open")

    def __init__(self, deps: list[tuple[NodeId, str, str]]) -> None:
        self.deps = deps
        self.node_pos: dict[str, list[int]] = {}
        for pos, (node, _, _) in enumerate(deps):
            self.node_pos.setdefault(node, []).append(pos)
        self.classes: dict[Hashable, _Class] = {}
        self.nc_version = -1
        self.nc_positions: list[tuple[int, NodeId]] = []
        """(position, node) of deployments whose circuit must be asked, in order."""
        self.nc_open: frozenset[int] = frozenset()
        """Positions among those whose circuit is Open."""
        self.nc_all_open = True
        """Whether all of them are Open (none HalfOpen under single-probe)."""


class CandidateIndex:
    """Ranked candidates per (capability, request class), kept current by listeners.

    Owned by a :class:`~fedsim.federation.router.Router`; :meth:`pool` answers a route
    request with the same pool the full path would compute, or None when it must fall back.
    """

    def __init__(self, router: "Router") -> None:
        self.router = router
        self.catalog = router.catalog
        self.health = router.health_checker
        self.breaker = router.circuit_breaker
        self.policy = router.policy
        self.fixes = router.fixes
        self.locality_from_origin = self.fixes.locality_from_origin
        self.log: list[str] = []
        self.single_probe = self.breaker.fixes.half_open_single_probe
        self.eager = self.breaker.fixes.eager_half_open
        self.asked: dict[str, CircuitState] = {}
        """Nodes whose ``is_open`` is not trivially False: Open, and HalfOpen under
        ``half_open_single_probe``, with their state."""
        for n, rec in self.breaker.records():
            if rec.state is OPEN or (rec.state is HALF_OPEN and self.single_probe):
                self.asked[n] = rec.state
        self.nc_version = 0
        self.open_base: Optional[float] = None
        """Earliest last failure (opened_at under ``eager_half_open``) of the Open circuits
        (inf: none); None when it must be recomputed."""
        self.hits = 0
        """Routes answered by the index."""
        self.fallbacks = 0
        """Routes handed back to the full path."""
        self.materialised = 0
        """Classes built (initially, after invalidation, or after lagging too far)."""
        self.trims = 0
        """Times the change log was trimmed."""
        self.evicted = 0
        """Times classes were evicted (more than ``_MAX_CLASSES`` in one capability)."""
        self.breaker_skips = 0
        """Routes that met Open circuits and knew without asking that they stay Open."""
        self.health.listeners.append(self._on_health)
        self.breaker.listeners.append(self._on_breaker)
        self._reset()

    def close(self) -> None:
        """Detach from the health checker and breaker (the router dropped this index)."""
        try:
            self.health.listeners.remove(self._on_health)
        except ValueError:  # pragma: no cover
            pass
        try:
            self.breaker.listeners.remove(self._on_breaker)
        except ValueError:  # pragma: no cover
            pass

    # ------------------------------------------------------------------ invalidation
    def _reset(self) -> None:
        """Forget every capability (rebuilt lazily) and re-read policy support."""
        self.caps: dict[Capability, _Cap] = {}
        self.last_capability: Optional[Capability] = None
        self.last_cap: Optional[_Cap] = None
        """The capability last routed and its ``_Cap``."""
        self.log.clear()
        self.catalog_version = self.catalog.version
        self.policy_epoch = EPOCH[0]
        self._peek = self.health.peek
        # The health checker's live records, for catch-up without a peek() call per node:
        # peek only does more (ageing throughput) under real_health_metrics, when the
        # index is not used.
        self._states = self.health._nodes
        self.key_fn = request_key_function(self.policy)
        self.memoise = reads_only_standard_fields(self.policy)
        self.usable = (self.key_fn is not None
                       and not self.fixes.real_health_metrics
                       and not getattr(self.health.fixes, "real_health_metrics", False))

    def _on_health(self, node: NodeId) -> None:
        log = self.log
        log.append(node)
        if len(log) > _LOG_TRIM:
            self._trim_log()

    def _on_breaker(self, node: NodeId, old, new, now: int) -> None:
        asked = self.asked
        if new is OPEN or (new is HALF_OPEN and self.single_probe):
            if asked.get(node) is not new:
                asked[node] = new
                self.nc_version += 1
        elif node in asked:
            del asked[node]
            self.nc_version += 1
        self.open_base = None

    def _open_base(self) -> float:
        """Before ``open_base + reset_timeout`` every Open circuit's ``is_open`` is True
        without side effects (a failure recorded while Open only moves its time later)."""
        base = math.inf
        record = self.breaker.record
        eager = self.eager
        for node, state in self.asked.items():
            if state is OPEN:
                rec = record(node)
                t = rec.opened_at if eager else rec.last_failure
                if t is not None and t < base:
                    base = t
        self.open_base = base
        return base

    def _cap(self, capability: Capability) -> _Cap:
        deps: list[tuple[NodeId, str, str]] = []
        for entry in self.catalog.entries():
            if capability not in entry.metadata.capabilities:
                continue
            for d in entry.deployments:
                deps.append((d.node_id, d.region_id, d.endpoint))
        cap = self.caps[capability] = _Cap(deps)
        return cap

    # ------------------------------------------------------------------ candidates
    def _candidate(self, node: NodeId, region: str, endpoint: str, request: InferenceRequest,
                   origin: Optional[str], memo: Optional[dict]) -> Optional[RouteCandidate]:
        """Build and rank one candidate as ``Router.build_candidates`` and
        ``Router.rank_candidates`` do (same values, same policy calls); None when the node
        is Unhealthy.  (``x if x < 1.0 else 1.0`` is ``min(x, 1.0)`` for these non-NaN
        values, and the if-chain is the health score table without hashing an Enum.)

        ``memo`` (built-in policies only, see :func:`.policy.reads_only_standard_fields`)
        maps what those policies read of a candidate, (region, health score, p50,
        throughput), to the (eligible, score) the policy gave an earlier candidate of this
        class with the same values: the same result, without the calls."""
        h = self._peek(node)
        if h is None:
            status, p50, throughput, health_score = _UNKNOWN, DEFAULT_HEALTH_FOR_UNKNOWN_P50, 0, 0.3
        else:
            status = h.status
            if status is _HEALTHY:
                health_score = 1.0
            elif status is _DEGRADED:
                health_score = 0.5
            elif status is _UNKNOWN:
                health_score = 0.3
            else:
                return None  # Unhealthy
            p50, throughput = h.latency_p50, h.throughput
        x = (p50 // NS_PER_MS) / 5000.0
        y = throughput / 1000.0
        target = RouteTarget(node, region, endpoint, p50, 0.0)
        scores = RouteScores(
            1.0 - (x if x < 1.0 else 1.0),
            y if y < 1.0 else 1.0,
            0.5,
            0.5 if origin is None else 1.0 if region == origin else 0.0,
            health_score,
            0.0,
        )
        c = RouteCandidate(target, scores, True, None, status)
        if memo is not None:
            mk = (region, health_score, p50, throughput)
            s = memo.get(mk)
            if s is not None:
                if s is _INELIGIBLE:
                    c.eligible = False
                    c.rejection_reason = "Policy rejected"
                else:
                    target.score = s
                    scores.total = s
                return c
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
        policy = self.policy
        if policy.is_eligible(c, request):
            s = policy.score(c, request)
            target.score = s
            scores.total = s
        else:
            c.eligible = False
            c.rejection_reason = "Policy rejected"
            s = _INELIGIBLE
        if memo is not None:
            memo[mk] = s
        return c

    def _slot(self, cls: _Class, pos: int, dep: tuple[NodeId, str, str],
              request: InferenceRequest, origin: Optional[str]) -> Optional[tuple]:
        """The slot for the deployment at ``pos`` as its node is now (see ``_Class.slots``).

        A candidate is fully determined by its position (node, region, endpoint), the
        node's status, p50 and throughput, and the class (request key, origin), so a slot
        built earlier for the same values is reused: the same values, without rebuilding
        and rescoring.  (The health score stands for the status: a distinct number per
        status that has a candidate; an unregistered node is scored as an Unknown one.)"""
        h = self._peek(dep[0])
        if h is None:
            key = (pos, 0.3, DEFAULT_HEALTH_FOR_UNKNOWN_P50, 0)
        else:
            status = h.status
            if status is _HEALTHY:
                key = (pos, 1.0, h.latency_p50, h.throughput)
            elif status is _DEGRADED:
                key = (pos, 0.5, h.latency_p50, h.throughput)
            elif status is _UNKNOWN:
                key = (pos, 0.3, h.latency_p50, h.throughput)
            else:
                return None  # Unhealthy
        cache = cls.cache
        slot = cache.get(key)
        if slot is not None:
            return slot
        c = self._candidate(dep[0], dep[1], dep[2], request, origin, cls.memo)
        if c.eligible:
            t = c.scores.total
            slot = (c, None, True) if t != t else (c, (-t, pos, c), False)
        else:
            slot = (c, None, False)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[key] = slot
        return slot

    def _materialise(self, cap: _Cap, key: Hashable, request: InferenceRequest,
                     origin: Optional[str]) -> _Class:
        cls = _Class(len(self.log))
        if self.memoise:
            cls.memo = {}
        slots = cls.slots
        slots.extend([None] * len(cap.deps))
        make = self._slot
        ranked = cls.ranked
        for pos, dep in enumerate(cap.deps):
            slot = slots[pos] = make(cls, pos, dep, request, origin)
            if slot is None:
                continue
            cls.present += 1
            if slot[1] is not None:
                ranked.append(slot[1])
            elif slot[2]:
                cls.nan += 1
        ranked.sort()
        cls.order = [e[2] for e in ranked]
        cap.classes[key] = cls
        self.materialised += 1
        return cls

    def _catch_up(self, cap: _Cap, cls: _Class, request: InferenceRequest,
                  origin: Optional[str]) -> None:
        """Bring the slots of the nodes logged since this class was last current up to
        date, moving their ranking entries (hot path: a Healthy node, one deployment, a
        cached slot, both old and new entry ranked).  A node logged twice is simply redone:
        the second time finds its slot current."""
        log = self.log
        end = len(log)
        node_pos = cap.node_pos
        slots = cls.slots
        ranked = cls.ranked
        order = cls.order
        states = self._states
        cached = cls.cache.get
        for node in log[cls.cursor:end]:
            positions = node_pos.get(node)
            if positions is None:
                continue
            st = states.get(node)  # HealthChecker.peek, inline (see _reset)
            h = None if st is None else st.health
            healthy = h is not None and h.status is _HEALTHY
            for pos in positions:
                new = None
                if healthy:
                    new = cached((pos, 1.0, h.latency_p50, h.throughput))
                if new is None:
                    new = self._slot(cls, pos, cap.deps[pos], request, origin)
                old = slots[pos]
                if new is old:
                    continue
                slots[pos] = new
                if old is None or new is None or old[1] is None or new[1] is None:
                    self._replace(cls, pos, old, new)
                    continue
                oe = old[1]
                ne = new[1]
                i = bisect_left(ranked, oe)
                if ne[0] == oe[0]:  # the same key (do not compare the candidates)
                    j = i
                else:
                    j = bisect_left(ranked, ne)
                if j == i or j == i + 1:  # still in order at i
                    ranked[i] = ne
                    order[i] = new[0]
                elif j < i:
                    del ranked[i]
                    del order[i]
                    ranked.insert(j, ne)
                    order.insert(j, new[0])
                else:
                    ranked.insert(j, ne)
                    order.insert(j, new[0])
                    del ranked[i]
                    del order[i]
        # Only now: if a policy raised above, the next use redoes the whole backlog (a
        # position already redone finds its slot unchanged).
        cls.cursor = end

    @staticmethod
    def _replace(cls: _Class, pos: int, old: Optional[tuple], new: Optional[tuple]) -> None:
        """Replace slot ``old`` by ``new`` (already stored) in the counts and the ranking,
        when either has no ranking entry."""
        ranked = cls.ranked
        i = -1  # the old entry's index in ranked, if it is there
        if old is None:
            cls.present += 1
        else:
            if old[1] is not None:
                i = bisect_left(ranked, old[1])
            elif old[2]:
                cls.nan -= 1
            if new is None:
                cls.present -= 1
        if i >= 0:
            del ranked[i]
            del cls.order[i]
        if new is not None:
            ne = new[1]
            if ne is not None:
                j = bisect_left(ranked, ne)
                ranked.insert(j, ne)
                cls.order.insert(j, new[0])
            elif new[2]:
                cls.nan += 1

    def _evict(self, cap: _Cap) -> None:
        """Drop the least recently used quarter of the capability's classes (a policy keyed
        on many distinct values must not grow the index without bound)."""
        by_use = sorted(cap.classes.items(), key=lambda kv: kv[1].used)
        for key, _ in by_use[: max(1, len(by_use) // 4)]:
            del cap.classes[key]
        self.evicted += 1

    def _trim_log(self) -> None:
        """Drop the log prefix every class has consumed; classes lagging by more entries
        than they have positions are dropped (rebuilding costs no more than catching up)."""
        self.trims += 1
        log = self.log
        end = len(log)
        low = end
        for cap in self.caps.values():
            stale = [k for k, c in cap.classes.items() if end - c.cursor > max(len(c.slots), 64)]
            for k in stale:
                del cap.classes[k]
            for c in cap.classes.values():
                low = min(low, c.cursor)
        if low:
            del log[:low]
            for cap in self.caps.values():
                for c in cap.classes.values():
                    c.cursor -= low

    # ------------------------------------------------------------------ routing
    def pool(self, request: InferenceRequest,
             exclude: Optional[AbstractSet[str]] = None) -> Optional[list[RouteCandidate]]:
        """The full path's pool for ``request`` (possibly empty), NoCapacity when there is
        no candidate at all, or None when the full path must answer instead."""
        if self.catalog_version != self.catalog.version or self.policy_epoch != EPOCH[0]:
            self._reset()
        if not self.usable:
            self.fallbacks += 1
            return None
        capability = request.capability
        if capability is self.last_capability:  # (Capability hashes in Python)
            cap = self.last_cap
        else:
            cap = self.caps.get(capability)
            if cap is None:
                cap = self._cap(capability)
            self.last_capability = capability
            self.last_cap = cap
        key = self.key_fn(request)
        origin = None
        if self.locality_from_origin:
            origin = request.origin_region
            key = (key, origin)
        cls = cap.classes.get(key)
        if cls is None:
            if len(cap.classes) >= _MAX_CLASSES:
                self._evict(cap)
            cls = self._materialise(cap, key, request, origin)
        elif cls.cursor != len(self.log):
            self._catch_up(cap, cls, request, origin)
        cls.used = hits = self.hits
        if cls.nan:
            self.fallbacks += 1
            return None
        self.hits = hits + 1
        config = self.router.config
        if not self.asked and not exclude and cls.present:
            # The common case: a prefix of the ranking.
            ranked = cls.ranked
            limit = config.max_candidates
            n = len(ranked) if len(ranked) < limit else limit
            if n > 0 and ranked[n - 1][0] <= -config.min_score:
                return cls.order[:n]
        return self._pool(capability, cap, cls, config, exclude)

    def _pool(self, capability: Capability, cap: _Cap, cls: _Class, config,
              exclude: Optional[AbstractSet[str]]) -> list[RouteCandidate]:
        """``pool`` in the other cases: circuits to ask, nodes to exclude, no candidate,
        or a pool that is not the first ``max_candidates`` of the ranking."""
        open_pos = self._open_positions(cap) if self.asked else None
        present = cls.present
        if open_pos is not None:
            slots = cls.slots
            for pos in open_pos:
                if slots[pos] is not None:
                    present -= 1
        if not present:
            raise NoCapacity(capability)
        limit = config.max_candidates
        if limit <= 0:
            return []
        neg_min = -config.min_score
        ranked = cls.ranked
        if exclude:
            out = []
            skipped = False
            for neg, pos, c in ranked:
                if not neg <= neg_min:  # (NaN min_score: nothing, as Router.pool)
                    break
                if open_pos is not None and pos in open_pos:
                    continue
                if c.target.node_id in exclude:
                    skipped = True
                    continue
                out.append(c)
                if len(out) == limit:
                    break
            if out or not skipped:
                return out
        out = []
        for neg, pos, c in ranked:
            if not neg <= neg_min:
                break
            if open_pos is not None and pos in open_pos:
                continue
            out.append(c)
            if len(out) == limit:
                break
        return out

    def _open_positions(self, cap: _Cap) -> Optional[AbstractSet[int]]:
        """Positions whose circuit is open, asking every deployment whose circuit may be
        open, in order (Closed and, without single-probe, HalfOpen circuits answer False
        with no side effect), unless none of them can change before the earliest reset
        time; None when there is none."""
        if cap.nc_version != self.nc_version:
            asked = self.asked
            positions = [(p, n) for n in asked for p in cap.node_pos.get(n, ())]
            positions.sort()
            cap.nc_positions = positions
            cap.nc_open = frozenset(p for p, n in positions if asked[n] is OPEN)
            cap.nc_all_open = len(cap.nc_open) == len(positions)
            cap.nc_version = self.nc_version
        if not cap.nc_positions:
            return None
        base = self.open_base
        if base is None:
            base = self._open_base()
        breaker = self.breaker
        if cap.nc_all_open and breaker.clock.now_ns() < base + breaker.config.reset_timeout:
            self.breaker_skips += 1
            return cap.nc_open
        open_pos = None
        is_open = breaker.is_open
        for pos, node in cap.nc_positions:
            if is_open(node):
                if open_pos is None:
                    open_pos = set()
                open_pos.add(pos)
        self.open_base = None
        return open_pos
