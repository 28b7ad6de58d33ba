"""Routing policies (spec §5) and the policy registry.

A policy scores a :class:`RouteCandidate` for a request (higher is better) and decides its
eligibility.  :class:`CompositePolicy` averages its members' already-weighted scores
(Q-COMPOSITE-MEAN).  Register your own with :func:`register_policy`.

Request keys (the contract for policy authors)
----------------------------------------------
The router keeps candidates scored and sorted between requests (:mod:`.index`) instead of
rescoring every node for every request.  It can do that only if it knows which requests
score alike, so a policy may define::

    def request_key(self, request) -> Hashable: ...

meaning: for any two requests with equal keys, ``score(c, r)`` and ``is_eligible(c, r)``
are equal (bit for bit) for every candidate ``c``.  Return something cheap and small: a
constant (``None``) if the request is never read, otherwise exactly the request fields (or
the branch taken on them) that the policy reads.  Also required for the index:

* ``score`` / ``is_eligible`` are pure functions of the candidate, the request and the
  policy's settings: no clock, no load, no randomness, no side effects (a policy that
  reads changing state must not define ``request_key``);
* keys compare equal to themselves (no NaN inside a key);
* settings are not changed while routers use the policy.  Assigning an attribute of a
  built-in policy, ``with_region``, ``with_region_cost`` and ``CompositePolicy.with_policy``
  are detected (they bump :data:`EPOCH` and routers re-index); mutating ``region_costs``,
  ``region_privacy`` or ``CompositePolicy.policies`` in place is not: call
  :func:`policies_changed` afterwards.

Optionally, ``request_key_constant = True`` (an attribute or property) says the key never
varies; the router then leaves the policy out of its class keys, saving a call per request.

Subclassing: a key is trusted only if ``request_key`` is defined in the same class as
``score`` and ``is_eligible`` or in a subclass of it, so overriding ``score`` of a built-in
policy without redefining ``request_key`` sends routing down the full path rather than
reusing a key that may miss what the new ``score`` reads (likewise an inherited
``request_key_constant`` is ignored once ``request_key`` is redefined below it).

A policy without ``request_key`` (or a composite with such a member) still works: the
router then uses the full path, building and scoring every candidate per request.
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Callable, Hashable, Iterable, Mapping, Optional, Protocol, runtime_checkable

from .duration import NS_PER_MS, seconds
from .fixes import NO_FIXES, Fixes
from .types import HealthState, InferenceRequest, PrivacyLevel, RegionId, RouteCandidate

EPOCH = [0]
"""Bumped whenever a built-in policy's settings change; routing indexes compare it on every
route and rebuild when it moved.  (A one-element list, so readers hold the cell.)"""


def policies_changed() -> None:
    """Tell routers that some policy's settings changed (after an in-place mutation that
    the built-in policies cannot see, e.g. ``policy.region_costs[r] = x``)."""
    EPOCH[0] += 1


@runtime_checkable
class RoutingPolicy(Protocol):
    """What the router needs from a policy.  ``request_key`` is optional (see the module
    docstring); without it routing takes the full path."""

    name: str

    def score(self, candidate: RouteCandidate, request: InferenceRequest) -> float: ...

    def is_eligible(self, candidate: RouteCandidate, request: InferenceRequest) -> bool: ...


def _constant_key(request: InferenceRequest) -> Hashable:
    return None


def request_key_function(policy: object) -> Optional[Callable[[InferenceRequest], Hashable]]:
    """A function of the request whose values are equal exactly when the policy's
    ``request_key`` values are, or None when the policy (or, for a composite, any member,
    recursively) has no ``request_key``.

    It is a cheaper stand-in for ``policy.request_key``: members whose key is constant are
    left out, the privacy key is read by an ``attrgetter``, the cost key by a plain
    function for the policy's ``cost_bands`` setting (its ``fixes`` are frozen, and assigning
    them bumps :data:`EPOCH`), and the composite of those two (the enterprise default's
    key) by one function."""
    if type(policy) is CompositePolicy:
        fns = []
        for p in policy.policies:
            f = request_key_function(p)
            if f is None:
                return None
            if f is not _constant_key:
                fns.append(f)
        if not fns:
            return _constant_key
        if len(fns) == 1:
            return fns[0]
        if len(fns) == 2:
            f, g = fns
            if f is _privacy_key and (g is _cost_key or g is _cost_band_key):
                return _privacy_cost_key if g is _cost_key else _privacy_cost_band_key
            return lambda request: (f(request), g(request))
        if len(fns) == 3:
            f, g, h = fns
            return lambda request: (f(request), g(request), h(request))
        return lambda request: tuple([f(request) for f in fns])
    key = getattr(policy, "request_key", None)
    cls = type(policy)
    if not callable(key) or not _key_covers(cls):
        return None
    if getattr(policy, "request_key_constant", False) and _owner(cls, "request_key_constant") \
            <= _owner(cls, "request_key"):
        return _constant_key
    if cls is PrivacyPolicy:
        return _privacy_key
    if cls is CostPolicy:
        return _cost_band_key if policy.fixes.cost_bands else _cost_key
    return key


def _owner(cls: type, name: str) -> float:
    """Position in the MRO of the class defining ``name`` (lower: more derived)."""
    for i, klass in enumerate(cls.__mro__):
        if name in klass.__dict__:
            return i
    return math.inf


def _key_covers(cls: type) -> bool:
    """Whether ``request_key`` is defined at least as far down the class hierarchy as
    ``score`` and ``is_eligible``: a subclass that changes what scoring reads without
    redefining the key (e.g. a LatencyPolicy subclass reading the tenant) must not
    inherit the parent's key."""
    k = _owner(cls, "request_key")
    return k < math.inf and _owner(cls, "score") >= k and _owner(cls, "is_eligible") >= k


def reads_only_standard_fields(policy: object) -> bool:
    """True for the built-in policies and composites made only of them (exact types).

    They read of a candidate only its region, estimated latency, health score and state,
    throughput, latency and locality scores, which the router derives from the node's
    region, status, p50 and throughput (and the request's origin); never the node id or
    the endpoint.  The candidate index memoises their results on those values."""
    if type(policy) is CompositePolicy:
        return all(reads_only_standard_fields(p) for p in policy.policies)
    return type(policy) in (LatencyPolicy, LocalityPolicy, PrivacyPolicy, CostPolicy, HealthPolicy)


class _Tracked:
    """Base of the built-in policies: any attribute assignment bumps :data:`EPOCH`."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        EPOCH[0] += 1


class LatencyPolicy(_Tracked):
    """Prefer low estimated latency; reject above ``max_latency`` (spec §5.1).

    Scores on whole milliseconds; eligibility at full precision, so exactly ``max_latency``
    is eligible with score 0 (Q-LATENCY-BOUNDARY)."""

    name = "latency"
    __slots__ = ("weight", "max_latency")

    def __init__(self, weight: float = 1.0, max_latency: int = seconds(5)) -> None:
        self.weight = weight
        self.max_latency = max_latency

    def score(self, candidate: RouteCandidate, request: InferenceRequest) -> float:
        l = float(candidate.target.estimated_latency // NS_PER_MS)
        m = float(self.max_latency // NS_PER_MS)
        if l >= m:
            return 0.0
        return (1.0 - l / m) * self.weight

    def is_eligible(self, candidate: RouteCandidate, request: InferenceRequest) -> bool:
        return candidate.target.estimated_latency <= self.max_latency

    request_key_constant = True

    def request_key(self, request: InferenceRequest) -> Hashable:
        return None  # the request is not read

    def __repr__(self) -> str:
        return f"LatencyPolicy(weight={self.weight}, max_latency={self.max_latency})"


class LocalityPolicy(_Tracked):
    """Prefer same-region nodes (spec §5.2).

    Reference: ``(0.5 + locality_score * same_region_boost) * weight``; router candidates
    always carry locality 0.5 (Q-LOCALITY).  With ``locality_from_origin`` the router sets
    locality 1.0 / 0.0 for same / other region than the request's origin, and this policy
    scores them ``0.5 + same_region_boost`` / ``0.5 - cross_region_penalty`` (x weight)."""

    name = "locality"
    __slots__ = ("weight", "same_region_boost", "cross_region_penalty", "fixes")

    def __init__(self, weight: float = 1.0, same_region_boost: float = 0.3,
                 cross_region_penalty: float = 0.1, fixes: Fixes = NO_FIXES) -> None:
        self.weight = weight
        self.same_region_boost = same_region_boost
        self.cross_region_penalty = cross_region_penalty
        self.fixes = fixes

    def score(self, candidate: RouteCandidate, request: InferenceRequest) -> float:
        loc = candidate.scores.locality_score
        if self.fixes.locality_from_origin and request.origin_region is not None:
            if loc >= 1.0:
                return (0.5 + self.same_region_boost) * self.weight
            if loc <= 0.0:
                return (0.5 - self.cross_region_penalty) * self.weight
        return (0.5 + loc * self.same_region_boost) * self.weight

    def is_eligible(self, candidate: RouteCandidate, request: InferenceRequest) -> bool:
        return True

    def request_key(self, request: InferenceRequest) -> Hashable:
        """The origin region, when the ``locality_from_origin`` branch reads it."""
        if self.fixes.locality_from_origin:
            return request.origin_region
        return None

    @property
    def request_key_constant(self) -> bool:
        return not self.fixes.locality_from_origin

    def __repr__(self) -> str:
        return f"LocalityPolicy(weight={self.weight}, same_region_boost={self.same_region_boost})"


class PrivacyPolicy(_Tracked):
    """Only route to regions cleared for the request's privacy level (spec §5.3).
    Unknown regions count as Internal; the score is always 1.0."""

    name = "privacy"
    __slots__ = ("region_privacy",)

    def __init__(self, region_privacy: Optional[Mapping[str, PrivacyLevel]] = None) -> None:
        self.region_privacy: dict[RegionId, PrivacyLevel] = {}
        for region, level in (region_privacy or {}).items():
            self.with_region(region, level)

    def with_region(self, region: str, level: PrivacyLevel) -> "PrivacyPolicy":
        self.region_privacy[RegionId(region)] = PrivacyLevel(level)
        EPOCH[0] += 1
        return self

    def region_level(self, region: str) -> PrivacyLevel:
        return self.region_privacy.get(region, PrivacyLevel.INTERNAL)

    def score(self, candidate: RouteCandidate, request: InferenceRequest) -> float:
        return 1.0

    def is_eligible(self, candidate: RouteCandidate, request: InferenceRequest) -> bool:
        return self.region_privacy.get(candidate.target.region_id, PrivacyLevel.INTERNAL) \
            >= request.qos.privacy

    def request_key(self, request: InferenceRequest) -> Hashable:
        return request.qos.privacy

    def __repr__(self) -> str:
        return f"PrivacyPolicy({dict(self.region_privacy)!r})"


def _clamp01(x: float) -> float:
    # Like Rust's f64::clamp: NaN stays NaN (Q-NAN).
    if x != x:
        return x
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class CostPolicy(_Tracked):
    """Trade region cost against performance by the request's cost tolerance (spec §5.4).

    Reference: tolerance <= 50 scores ``1 - region_cost``, >= 51 scores the candidate's
    throughput score (always 0.0 in the reference, Q-COST).  With ``cost_bands``: with
    c = 1 - region_cost and p = the candidate's latency score, tolerance 0-30 scores c,
    31-50 ``0.75c + 0.25p``, 51-70 ``0.25c + 0.75p``, 71+ p (all x weight)."""

    name = "cost"
    __slots__ = ("weight", "region_costs", "fixes")

    def __init__(self, weight: float = 1.0, region_costs: Optional[Mapping[str, float]] = None,
                 fixes: Fixes = NO_FIXES) -> None:
        self.weight = weight
        self.region_costs: dict[RegionId, float] = {}
        self.fixes = fixes
        for region, cost in (region_costs or {}).items():
            self.with_region_cost(region, cost)

    def with_region_cost(self, region: str, cost: float) -> "CostPolicy":
        self.region_costs[RegionId(region)] = _clamp01(float(cost))
        EPOCH[0] += 1
        return self

    def score(self, candidate: RouteCandidate, request: InferenceRequest) -> float:
        tol = request.qos.cost_tolerance
        cost = self.region_costs.get(candidate.target.region_id, 0.5)
        if self.fixes.cost_bands:
            cheap = 1.0 - cost
            perf = candidate.scores.latency_score
            if tol <= 30:
                s = cheap
            elif tol <= 50:
                s = 0.75 * cheap + 0.25 * perf
            elif tol <= 70:
                s = 0.25 * cheap + 0.75 * perf
            else:
                s = perf
            return s * self.weight
        if tol / 100.0 > 0.5:
            return candidate.scores.throughput_score * self.weight
        return (1.0 - cost) * self.weight

    def is_eligible(self, candidate: RouteCandidate, request: InferenceRequest) -> bool:
        return True

    def request_key(self, request: InferenceRequest) -> Hashable:
        """The branch ``score`` takes on the tolerance: the band (0-3) under ``cost_bands``,
        else whether ``tolerance / 100.0 > 0.5``."""
        tol = request.qos.cost_tolerance
        if self.fixes.cost_bands:
            return 0 if tol <= 30 else 1 if tol <= 50 else 2 if tol <= 70 else 3
        return tol / 100.0 > 0.5

    def __repr__(self) -> str:
        return f"CostPolicy(weight={self.weight}, region_costs={dict(self.region_costs)!r})"


class HealthPolicy(_Tracked):
    """Prefer healthy nodes; reject health score 0 (spec §5.5).

    Reference: ``health_score * weight`` (1.0 / 0.5 / 0.3 for Healthy / Degraded / Unknown),
    ignoring ``healthy_score`` and ``degraded_score`` (Q-HEALTH-POLICY).  With
    ``health_policy_scores`` a Healthy candidate scores ``healthy_score * weight`` and a
    Degraded one ``degraded_score * weight``; others keep ``health_score * weight``."""

    name = "health"
    __slots__ = ("weight", "healthy_score", "degraded_score", "fixes")

    def __init__(self, weight: float = 2.0, healthy_score: float = 1.0,
                 degraded_score: float = 0.3, fixes: Fixes = NO_FIXES) -> None:
        self.weight = weight
        self.healthy_score = healthy_score
        self.degraded_score = degraded_score
        self.fixes = fixes

    def score(self, candidate: RouteCandidate, request: InferenceRequest) -> float:
        if self.fixes.health_policy_scores:
            state = candidate.health_state
            if state is HealthState.HEALTHY:
                return self.healthy_score * self.weight
            if state is HealthState.DEGRADED:
                return self.degraded_score * self.weight
        return candidate.scores.health_score * self.weight

    def is_eligible(self, candidate: RouteCandidate, request: InferenceRequest) -> bool:
        return candidate.scores.health_score > 0.0

    request_key_constant = True

    def request_key(self, request: InferenceRequest) -> Hashable:
        return None  # the request is not read

    def __repr__(self) -> str:
        return f"HealthPolicy(weight={self.weight})"


class CompositePolicy(_Tracked):
    """Mean of member scores; eligible when every member is (spec §5.6).

    ``CompositePolicy()`` is empty (score 1.0, always eligible), like the reference's
    ``new()``; :meth:`enterprise_default` is the reference's ``Default``."""

    name = "composite"
    __slots__ = ("policies",)

    def __init__(self, policies: Optional[Iterable[RoutingPolicy]] = None) -> None:
        self.policies: list[RoutingPolicy] = list(policies or [])

    @classmethod
    def enterprise_default(cls, fixes: Fixes = NO_FIXES) -> "CompositePolicy":
        """[Health, Latency, Privacy, Locality, Cost], all with defaults (and ``fixes``)."""
        return cls([HealthPolicy(fixes=fixes), LatencyPolicy(), PrivacyPolicy(),
                    LocalityPolicy(fixes=fixes), CostPolicy(fixes=fixes)])

    def with_policy(self, policy: RoutingPolicy) -> "CompositePolicy":
        self.policies.append(policy)
        EPOCH[0] += 1
        return self

    def score(self, candidate: RouteCandidate, request: InferenceRequest) -> float:
        if not self.policies:
            return 1.0
        total = 0.0
        for p in self.policies:
            total += p.score(candidate, request)
        return total / len(self.policies)

    def is_eligible(self, candidate: RouteCandidate, request: InferenceRequest) -> bool:
        for p in self.policies:
            if not p.is_eligible(candidate, request):
                return False
        return True

    def request_key(self, request: InferenceRequest) -> Hashable:
        """The members' keys, in order.  Raises AttributeError if a member has none (the
        router checks with :func:`request_key_function` first)."""
        return tuple([p.request_key(request) for p in self.policies])

    def __repr__(self) -> str:
        return f"CompositePolicy({self.policies!r})"


_privacy_key = attrgetter("qos.privacy")


def _cost_key(request: InferenceRequest) -> Hashable:
    """``CostPolicy.request_key`` without ``cost_bands``."""
    return request.qos.cost_tolerance / 100.0 > 0.5


def _cost_band_key(request: InferenceRequest) -> Hashable:
    """``CostPolicy.request_key`` under ``cost_bands``."""
    tol = request.qos.cost_tolerance
    return 0 if tol <= 30 else 1 if tol <= 50 else 2 if tol <= 70 else 3


def _privacy_cost_key(request: InferenceRequest) -> Hashable:
    """(privacy key, cost key) in one call: the enterprise default's key."""
    q = request.qos
    return (q.privacy, q.cost_tolerance / 100.0 > 0.5)


def _privacy_cost_band_key(request: InferenceRequest) -> Hashable:
    """(privacy key, cost band key) in one call."""
    q = request.qos
    tol = q.cost_tolerance
    return (q.privacy, 0 if tol <= 30 else 1 if tol <= 50 else 2 if tol <= 70 else 3)


# --------------------------------------------------------------------------- registry

PolicyFactory = Callable[..., RoutingPolicy]

POLICIES: dict[str, tuple[PolicyFactory, str]] = {}


def register_policy(name: str, factory: PolicyFactory, description: str = "",
                    *, replace: bool = False) -> None:
    """Make a policy constructible by name (scenario files, the CLI)."""
    if name in POLICIES and not replace:
        raise ValueError(f"a policy named {name!r} is already registered")
    POLICIES[name] = (factory, description)


def make_policy(name: str, **kwargs) -> RoutingPolicy:
    try:
        factory, _ = POLICIES[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(POLICIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown policy {name!r}{hint} Known: {', '.join(POLICIES)}") from None
    return factory(**kwargs)


register_policy("latency", LatencyPolicy, "prefer low estimated latency, reject above max_latency")
register_policy("locality", LocalityPolicy, "prefer same-region nodes")
register_policy("privacy", PrivacyPolicy, "only regions cleared for the request's privacy level")
register_policy("cost", CostPolicy, "trade region cost against performance by cost tolerance")
register_policy("health", HealthPolicy, "prefer healthy nodes, reject health score 0")
register_policy("composite", CompositePolicy, "mean of member policies")
register_policy("enterprise_default", CompositePolicy.enterprise_default,
                "the reference default: health, latency, privacy, locality, cost")
