"""Router: build, rank and select route candidates (spec §6).

``route`` = build candidates from the catalog (consulting the breaker, then health, for
every deployment), rank them with the policy (stable sort by total, descending), filter the
pool (eligible, ``total >= min_score``, first ``max_candidates``) and let the strategy pick.
Routing takes no simulated time; its only side effect on shared state is the breaker's
lazy Open → HalfOpen transition (Q-DUP-ISOPEN).

That is the *full path* (:meth:`Router.route_full`).  By default ``route`` answers from a
:class:`~fedsim.federation.index.CandidateIndex` that keeps the ranking between requests
and makes the same decisions (``RouterConfig(incremental=False)`` turns it off);
``get_candidates`` always takes the full path.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import AbstractSet, Optional, Union

from .catalog import ModelCatalog
from .circuit import CircuitBreaker
from .clock import WALL_CLOCK, Clock, EpochSource, wall_epoch_ns
from .duration import NS_PER_MS
from .errors import AllNodesUnhealthy, NoCapacity
from .fixes import NO_FIXES, Fixes
from .health import HealthChecker
from .index import CandidateIndex
from .load import LoadTracker
from .policy import CompositePolicy, RoutingPolicy
from .strategies import Strategy, make_strategy, strategy_name
from .types import (
    DEFAULT_HEALTH_FOR_UNKNOWN_P50,
    Capability,
    HealthState,
    InferenceRequest,
    LoadBalanceStrategy,
    RouteCandidate,
    RouteScores,
    RouteTarget,
)

_HEALTH_SCORE = {
    HealthState.HEALTHY: 1.0,
    HealthState.DEGRADED: 0.5,
    HealthState.UNKNOWN: 0.3,
}
_UNHEALTHY = HealthState.UNHEALTHY
_UNKNOWN = HealthState.UNKNOWN

INCREMENTAL_DEFAULT = True
"""Default of ``RouterConfig.incremental`` (read when a config is created; tests flip it
to run whole worlds on the full path)."""


def _incremental_default() -> bool:
    return INCREMENTAL_DEFAULT


@dataclass(slots=True)
class RouterConfig:
    """Router settings (spec §1.13).  ``strategy`` is a LoadBalanceStrategy or the name of a
    registered strategy; ``seed`` seeds the router's RNG (used by fixes and by the seeded
    strategies only).  ``incremental`` (fedsim) routes through the candidate index
    (:mod:`.index`); False forces the full path.  Both make the same decisions."""

    max_candidates: int = 10
    min_score: float = 0.1
    strategy: Union[LoadBalanceStrategy, str] = LoadBalanceStrategy.LEAST_LATENCY
    seed: int = 0
    incremental: bool = field(default_factory=_incremental_default)

    def __post_init__(self) -> None:
        if self.max_candidates < 0:
            raise ValueError(f"RouterConfig.max_candidates must be >= 0, got {self.max_candidates}")
        if self.min_score != self.min_score:
            raise ValueError("RouterConfig.min_score must not be NaN")


class Router:
    """Selects the node for a request.  Shares (does not copy) the catalog, health checker
    and breaker it is given.

    ``epoch_ns`` feeds the reference WeightedRandom draw; by default it is the clock's own
    ``epoch_ns`` when the clock has one (ManualClock, the simulation clock), so runs are
    reproducible, and the system's wall clock otherwise, as in the reference."""

    def __init__(
        self,
        config: Optional[RouterConfig] = None,
        catalog: Optional[ModelCatalog] = None,
        health_checker: Optional[HealthChecker] = None,
        circuit_breaker: Optional[CircuitBreaker] = None,
        *,
        policy: Optional[RoutingPolicy] = None,
        clock: Optional[Clock] = None,
        epoch_ns: Optional[EpochSource] = None,
        fixes: Fixes = NO_FIXES,
        load: Optional[LoadTracker] = None,
    ) -> None:
        self.__dict__["_index"] = None
        self.config = config if config is not None else RouterConfig()
        self.clock = clock if clock is not None else (
            health_checker.clock if health_checker is not None else WALL_CLOCK)
        self.catalog = catalog if catalog is not None else ModelCatalog()
        self.health_checker = health_checker if health_checker is not None else \
            HealthChecker(clock=self.clock, fixes=fixes)
        self.circuit_breaker = circuit_breaker if circuit_breaker is not None else \
            CircuitBreaker(clock=self.clock, fixes=fixes)
        self.fixes = fixes
        self.policy: RoutingPolicy = policy if policy is not None else \
            CompositePolicy.enterprise_default(fixes)
        if epoch_ns is None:
            # A simulated clock brings its own epoch reading, so runs stay reproducible.
            epoch_ns = getattr(self.clock, "epoch_ns", None) or wall_epoch_ns
        self.epoch_ns: EpochSource = epoch_ns
        # An own tracker keeps the latency EWMA only for a strategy that reads it (set with
        # the strategy, below); a tracker passed in is used as it is.
        self.load = load if load is not None else LoadTracker(latency=False)
        self.rng = random.Random(self.config.seed)
        self.strategy: Strategy = make_strategy(self.config.strategy)
        self.routes_full = 0
        """Routes answered by the full path (``routes_indexed``: by the index)."""

    # The index reads these; replacing one drops it (it is rebuilt on the next route).
    _INDEX_INPUTS = frozenset({"catalog", "health_checker", "circuit_breaker", "policy", "fixes"})

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        if name in Router._INDEX_INPUTS:
            self.drop_index()
        elif name == "strategy" and getattr(value, "reads_latency", True):
            self.load.latency = True

    def drop_index(self) -> None:
        """Forget the candidate index (it is rebuilt lazily on the next route)."""
        index = self.__dict__.get("_index")
        if index is not None:
            index.close()
        self.__dict__["_index"] = None

    @property
    def index(self) -> Optional[CandidateIndex]:
        """The candidate index, once a route has built it."""
        return self.__dict__.get("_index")

    @property
    def routes_indexed(self) -> int:
        index = self.__dict__.get("_index")
        return 0 if index is None else index.hits

    def with_policy(self, policy: RoutingPolicy) -> "Router":
        self.policy = policy
        return self

    @property
    def strategy_name(self) -> str:
        return strategy_name(self.config.strategy)

    # ------------------------------------------------------------------ candidates
    def build_candidates(self, capability: Capability,
                         request: Optional[InferenceRequest] = None) -> list[RouteCandidate]:
        """Every deployment of every model whose metadata has ``capability``, minus open
        circuits and Unhealthy nodes (spec §6.2).  ``request`` is only read by the
        ``locality_from_origin`` fix."""
        is_open = self.circuit_breaker.is_open
        peek = self.health_checker.peek
        origin = None
        if self.fixes.locality_from_origin and request is not None:
            origin = request.origin_region
        out: list[RouteCandidate] = []
        append = out.append
        for entry in list(self.catalog.entries()):
            if capability not in entry.metadata.capabilities:
                continue
            for d in list(entry.deployments):
                node = d.node_id
                if is_open(node):
                    continue
                h = peek(node)
                if h is None:
                    status, p50, throughput = _UNKNOWN, DEFAULT_HEALTH_FOR_UNKNOWN_P50, 0
                else:
                    status = h.status
                    if status is _UNHEALTHY:
                        continue
                    p50, throughput = h.latency_p50, h.throughput
                if origin is None:
                    locality = 0.5
                else:
                    locality = 1.0 if d.region_id == origin else 0.0
                append(RouteCandidate(
                    RouteTarget(node, d.region_id, d.endpoint, p50, 0.0),
                    RouteScores(
                        1.0 - min((p50 // NS_PER_MS) / 5000.0, 1.0),
                        min(throughput / 1000.0, 1.0),
                        0.5,
                        locality,
                        _HEALTH_SCORE[status],
                        0.0,
                    ),
                    True,
                    None,
                    status,
                ))
        return out

    def rank_candidates(self, candidates: list[RouteCandidate],
                        request: InferenceRequest) -> list[RouteCandidate]:
        """Score eligible candidates and stable-sort by total, descending (spec §6.3).
        Sorts in place and returns the list."""
        policy = self.policy
        for c in candidates:
            if not policy.is_eligible(c, request):
                c.eligible = False
                c.rejection_reason = "Policy rejected"
                continue
            s = policy.score(c, request)
            c.target.score = s
            c.scores.total = s
        candidates.sort(key=_total, reverse=True)
        return candidates

    def pool(self, ranked: list[RouteCandidate],
             exclude: Optional[AbstractSet[str]] = None) -> list[RouteCandidate]:
        """Eligible candidates with total >= min_score, best first, at most max_candidates.
        With ``exclude``, those nodes are left out first (falling back to the full pool when
        nothing else is left)."""
        min_score = self.config.min_score
        eligible = [c for c in ranked if c.eligible and c.scores.total >= min_score]
        if exclude:
            narrowed = [c for c in eligible if c.target.node_id not in exclude]
            if narrowed:
                eligible = narrowed
        return eligible[: self.config.max_candidates]

    def select_best(self, ranked: list[RouteCandidate], request: InferenceRequest,
                    exclude: Optional[AbstractSet[str]] = None) -> Optional[RouteCandidate]:
        pool = self.pool(ranked, exclude)
        if not pool:
            return None
        return self.strategy.select(pool, request, self)

    # ------------------------------------------------------------------ public API
    def route(self, request: InferenceRequest,
              exclude: Optional[AbstractSet[str]] = None) -> RouteTarget:
        """The chosen target, or NoCapacity (no candidate) / AllNodesUnhealthy (none
        selectable) (spec §6.5).  ``exclude`` (retry_excludes_tried) avoids those nodes
        while another is selectable.

        Answered by the candidate index unless ``config.incremental`` is False or the
        index cannot guarantee the full path's answer (see :mod:`.index`)."""
        t = self.route_shared(request, exclude)
        # A copy: the index's targets are shared by later requests.
        return RouteTarget(t.node_id, t.region_id, t.endpoint, t.estimated_latency, t.score)

    def route_shared(self, request: InferenceRequest,
                     exclude: Optional[AbstractSet[str]] = None) -> RouteTarget:
        """:meth:`route` without the copy: the target may be the candidate index's own,
        shared with later requests, so the caller must not change it (the gateway's retry
        loop uses this when its runners promise that, ``FederationGateway.share_targets``)."""
        if self.config.incremental:
            index = self._index
            if index is None or index.router is not self:  # (a copied router builds its own)
                index = CandidateIndex(self)
                self.__dict__["_index"] = index
            pool = index.pool(request, exclude)
            if pool is not None:
                if not pool:
                    raise AllNodesUnhealthy(request.capability)
                return self.strategy.select(pool, request, self).target
        return self.route_full(request, exclude)

    def route_full(self, request: InferenceRequest,
                   exclude: Optional[AbstractSet[str]] = None) -> RouteTarget:
        """``route`` by the spec's algorithm: build, rank, pool, select."""
        self.routes_full += 1
        candidates = self.build_candidates(request.capability, request)
        if not candidates:
            raise NoCapacity(request.capability)
        self.rank_candidates(candidates, request)
        best = self.select_best(candidates, request, exclude)
        if best is None:
            raise AllNodesUnhealthy(request.capability)
        return best.target

    def get_candidates(self, request: InferenceRequest) -> list[RouteCandidate]:
        """The full ranked list, eligible and not; never fails (spec §6.6)."""
        candidates = self.build_candidates(request.capability, request)
        return self.rank_candidates(candidates, request)

    def __repr__(self) -> str:
        return f"Router(strategy={self.strategy_name!r}, fixes={str(self.fixes)!r})"


def _total(c: RouteCandidate) -> float:
    return c.scores.total


class RouterBuilder:
    """Fluent construction; missing parts are fresh defaults sharing one clock (spec §6.1)."""

    def __init__(self) -> None:
        self._config: Optional[RouterConfig] = None
        self._catalog: Optional[ModelCatalog] = None
        self._health: Optional[HealthChecker] = None
        self._breaker: Optional[CircuitBreaker] = None
        self._policy: Optional[RoutingPolicy] = None
        self._clock: Optional[Clock] = None
        self._epoch: Optional[EpochSource] = None
        self._fixes: Fixes = NO_FIXES
        self._load: Optional[LoadTracker] = None

    def config(self, config: RouterConfig) -> "RouterBuilder":
        self._config = config
        return self

    def catalog(self, catalog: ModelCatalog) -> "RouterBuilder":
        self._catalog = catalog
        return self

    def health(self, health: HealthChecker) -> "RouterBuilder":
        self._health = health
        return self

    def circuit_breaker(self, breaker: CircuitBreaker) -> "RouterBuilder":
        self._breaker = breaker
        return self

    def policy(self, policy: RoutingPolicy) -> "RouterBuilder":
        self._policy = policy
        return self

    def clock(self, clock: Clock) -> "RouterBuilder":
        self._clock = clock
        return self

    def epoch_ns(self, source: EpochSource) -> "RouterBuilder":
        self._epoch = source
        return self

    def fixes(self, fixes: Fixes) -> "RouterBuilder":
        self._fixes = fixes
        return self

    def load(self, load: LoadTracker) -> "RouterBuilder":
        self._load = load
        return self

    def build(self) -> Router:
        clock = self._clock or WALL_CLOCK
        fixes = self._fixes
        return Router(
            self._config or RouterConfig(),
            self._catalog if self._catalog is not None else ModelCatalog(),
            self._health if self._health is not None else HealthChecker(clock=clock, fixes=fixes),
            self._breaker if self._breaker is not None else CircuitBreaker(clock=clock, fixes=fixes),
            policy=self._policy,
            clock=clock,
            epoch_ns=self._epoch,
            fixes=fixes,
            load=self._load,
        )
