"""Conformance tests T54-T82 (policies and router), spec §5, §6, §11.5, §11.6.

Also covers the §5.7 closed-form table (all 16 rows) and the §6.4 SipHash test vectors.
Every expected value is taken from the spec; floats are compared exactly.
"""

from __future__ import annotations

import pytest

from fedsim.federation import (
    AllNodesUnhealthy,
    Capability,
    CircuitBreaker,
    CircuitState,
    CompositePolicy,
    CostPolicy,
    HealthChecker,
    HealthPolicy,
    HealthState,
    InferenceRequest,
    LatencyPolicy,
    LoadBalanceStrategy,
    LocalityPolicy,
    ManualClock,
    ModelCatalog,
    NoCapacity,
    PrivacyLevel,
    PrivacyPolicy,
    QoSRequirements,
    RouteCandidate,
    RouteScores,
    RouteTarget,
    Router,
    RouterConfig,
    micros,
    millis,
    ms,
    seconds,
)
from fedsim.federation.siphash import hash_u128, weighted_random_r

GEN = Capability.GENERATE
TRANSCRIBE = Capability.TRANSCRIBE
EMBED = Capability.EMBED
CODE = Capability.CODE

PUBLIC = PrivacyLevel.PUBLIC
INTERNAL = PrivacyLevel.INTERNAL
CONFIDENTIAL = PrivacyLevel.CONFIDENTIAL
RESTRICTED = PrivacyLevel.RESTRICTED


# --------------------------------------------------------------------------- helpers


def cand(latency_ns: int = 0, health: float = 1.0, throughput: float = 0.0,
         locality: float = 0.5, region: str = "r", node: str = "n") -> RouteCandidate:
    """A hand-built candidate (the router's field layout, §6.2)."""
    return RouteCandidate(
        RouteTarget(node, region, "", latency_ns, 0.0),
        RouteScores(latency_score=0.5, throughput_score=throughput, cost_score=0.5,
                    locality_score=locality, health_score=health, total=0.0),
    )


def req(cap: Capability = GEN, privacy: PrivacyLevel = INTERNAL, tol: int = 50,
        request_id: str = "") -> InferenceRequest:
    return InferenceRequest(cap, qos=QoSRequirements(privacy=privacy, cost_tolerance=tol),
                            request_id=request_id)


class Env:
    """cat / H / CB on one ManualClock and a standard router (§11 conventions)."""

    def __init__(self, config: RouterConfig | None = None, policy=None, epoch_ns=None) -> None:
        self.clock = ManualClock()
        self.cat = ModelCatalog()
        self.H = HealthChecker(clock=self.clock)
        self.CB = CircuitBreaker(clock=self.clock)
        self.router = Router(config or RouterConfig(), self.cat, self.H, self.CB,
                             policy=policy, clock=self.clock, epoch_ns=epoch_ns)

    def reg(self, m, n, r, caps):
        self.cat.register(m, n, r, caps)

    def hreg(self, n):
        self.H.register_node(n)

    def ok(self, n, x_ms, times=1):
        for _ in range(times):
            self.H.report_success(n, millis(x_ms))

    def fail(self, n, times=1):
        for _ in range(times):
            self.H.report_failure(n)


def summary(c: RouteCandidate):
    return (str(c.target.node_id), c.scores.total)


# --------------------------------------------------------------------------- 11.5 policies


LATENCY_TABLE = [
    (0, 1.0), (1, 0.9998), (45, 0.991), (100, 0.98), (120, 0.976), (1000, 0.8),
    (2500, 0.5), (4000, 0.19999999999999996), (4999, 0.00019999999999997797), (5000, 0.0),
]


@pytest.mark.parametrize("lat_ms,expected", LATENCY_TABLE)
def test_T54_latency_policy_scores(lat_ms, expected):
    """T54: LatencyPolicy() scores latency ms -> value per §5.1; all <= 5000 ms are eligible."""
    p = LatencyPolicy()
    c = cand(millis(lat_ms))
    assert p.score(c, req()) == expected
    assert p.is_eligible(c, req()) is True


def test_T54_latency_policy_boundaries():
    """T54: 6000 ms -> 0.0 ineligible; 5000.9 ms -> 0.0 ineligible; 0.999 ms -> 1.0; name latency."""
    p = LatencyPolicy()
    c6000 = cand(millis(6000))
    assert p.score(c6000, req()) == 0.0
    assert p.is_eligible(c6000, req()) is False
    c5000_9 = cand(5_000_900_000)
    assert p.score(c5000_9, req()) == 0.0
    assert p.is_eligible(c5000_9, req()) is False
    c0_999 = cand(micros(999))
    assert p.score(c0_999, req()) == 1.0
    assert p.is_eligible(c0_999, req()) is True
    assert p.name == "latency"
    assert p.weight == 1.0 and p.max_latency == seconds(5)


def test_T55_latency_policy_configured():
    """T55: max 1000 ms: 1000 eligible, 1001 not; max 2 s: 1000 eligible, 3000 not; weight 2 at 0 -> 2.0; max 0 at 0 -> 0.0 eligible."""
    p = LatencyPolicy(max_latency=millis(1000))
    assert p.is_eligible(cand(millis(1000)), req()) is True
    assert p.is_eligible(cand(millis(1001)), req()) is False
    p2 = LatencyPolicy(max_latency=seconds(2))
    assert p2.is_eligible(cand(millis(1000)), req()) is True
    assert p2.is_eligible(cand(millis(3000)), req()) is False
    assert LatencyPolicy(weight=2.0).score(cand(0), req()) == 2.0
    p0 = LatencyPolicy(max_latency=0)
    assert p0.score(cand(0), req()) == 0.0
    assert p0.is_eligible(cand(0), req()) is True
    assert p0.is_eligible(cand(1), req()) is False


@pytest.mark.parametrize("loc,expected", [(0.0, 0.5), (0.5, 0.65), (0.7, 0.71), (1.0, 0.8)])
def test_T56_locality_policy(loc, expected):
    """T56: LocalityPolicy(): locality 0 -> 0.5; 0.5 -> 0.65; 0.7 -> 0.71; 1.0 -> 0.8; always eligible; name locality."""
    p = LocalityPolicy()
    c = cand(locality=loc)
    assert p.score(c, req()) == expected
    assert p.is_eligible(c, req()) is True
    assert p.name == "locality"


@pytest.mark.parametrize("privacy,expected", [
    (PUBLIC, (True, True, True)),
    (INTERNAL, (False, True, True)),
    (CONFIDENTIAL, (False, False, True)),
    (RESTRICTED, (False, False, False)),
])
def test_T57_privacy_matrix(privacy, expected):
    """T57: {pub: Public, conf: Confidential}; regions pub/unknown/conf eligibility per request privacy; score 1.0."""
    p = PrivacyPolicy({"pub": PUBLIC, "conf": CONFIDENTIAL})
    cands = [cand(region="pub"), cand(region="elsewhere"), cand(region="conf")]
    r = req(privacy=privacy)
    assert tuple(p.is_eligible(c, r) for c in cands) == expected
    assert [p.score(c, r) for c in cands] == [1.0, 1.0, 1.0]
    assert p.name == "privacy"


def test_T58_privacy_restricted():
    """T58: {eu-west: Restricted, us-west: Internal}, request Restricted -> eu-west eligible, us-west not; {us-west: Restricted} -> eligible."""
    p = PrivacyPolicy({"eu-west": RESTRICTED, "us-west": INTERNAL})
    r = req(privacy=RESTRICTED)
    assert p.is_eligible(cand(region="eu-west"), r) is True
    assert p.is_eligible(cand(region="us-west"), r) is False
    p2 = PrivacyPolicy().with_region("us-west", RESTRICTED)
    assert p2.is_eligible(cand(region="us-west"), r) is True


def test_T59_cost_clamped():
    """T59: with_region_cost(r1, 1.5) and (r2, -0.5) store 1.0 and 0.0."""
    p = CostPolicy().with_region_cost("r1", 1.5).with_region_cost("r2", -0.5)
    assert p.region_costs["r1"] == 1.0
    assert p.region_costs["r2"] == 0.0


@pytest.mark.parametrize("tol", [0, 20, 50])
def test_T60_cost_low_tolerance(tol):
    """T60: {cheap 0.2, pricey 0.9}, tolerance 0/20/50 -> cheap 0.8, pricey 0.09999999999999998, unknown 0.5."""
    p = CostPolicy(region_costs={"cheap": 0.2, "pricey": 0.9})
    r = req(tol=tol)
    assert p.score(cand(throughput=0.8, region="cheap"), r) == 0.8
    assert p.score(cand(throughput=0.8, region="pricey"), r) == 0.09999999999999998
    assert p.score(cand(throughput=0.8, region="unknown"), r) == 0.5


@pytest.mark.parametrize("tol", [51, 80, 100])
def test_T60_cost_high_tolerance(tol):
    """T60: tolerance 51/80/100 -> throughput_score 0.8 for every region."""
    p = CostPolicy(region_costs={"cheap": 0.2, "pricey": 0.9})
    r = req(tol=tol)
    for region in ("cheap", "pricey", "unknown"):
        assert p.score(cand(throughput=0.8, region=region), r) == 0.8


def test_T61_cost_values():
    """T61: {us-west: 0.3} tol 50 -> 0.7; {us-west: 0.8} tol 20 -> 0.19999999999999996; always eligible."""
    c = cand(throughput=0.8, region="us-west")
    p = CostPolicy().with_region_cost("us-west", 0.3)
    assert p.score(c, req(tol=50)) == 0.7
    p2 = CostPolicy().with_region_cost("us-west", 0.8)
    assert p2.score(c, req(tol=20)) == 0.19999999999999996
    for tol in (0, 50, 51, 100, 255):
        assert p.is_eligible(c, req(tol=tol)) is True
        assert p2.is_eligible(c, req(tol=tol)) is True
    assert p.name == "cost"


@pytest.mark.parametrize("h,expected,eligible", [
    (1.0, 2.0, True), (0.5, 1.0, True), (0.3, 0.6, True), (0.0, 0.0, False),
])
def test_T62_health_policy(h, expected, eligible):
    """T62: HealthPolicy(): 1.0 -> 2.0; 0.5 -> 1.0; 0.3 -> 0.6; 0.0 -> 0.0 and ineligible."""
    p = HealthPolicy()
    c = cand(health=h)
    assert p.score(c, req()) == expected
    assert p.is_eligible(c, req()) is eligible


def test_T62_health_policy_extra():
    """T62: health 0.01 eligible; HealthPolicy(weight=3.0) at 1.0 -> 3.0; name health."""
    assert HealthPolicy().is_eligible(cand(health=0.01), req()) is True
    assert HealthPolicy(weight=3.0).score(cand(health=1.0), req()) == 3.0
    assert HealthPolicy().name == "health"


def test_T63_composite():
    """T63: empty composite -> 1.0 eligible; [Health(w1), Latency] at (0 ms, 1.0) -> 1.0; [Health, Latency] at (100 ms, 1.0) -> 1.49, health 0 ineligible."""
    empty = CompositePolicy()
    assert empty.score(cand(millis(100), health=0.0), req()) == 1.0
    assert empty.is_eligible(cand(millis(100), health=0.0), req()) is True
    assert empty.name == "composite"
    p = CompositePolicy([HealthPolicy(weight=1.0), LatencyPolicy()])
    assert p.score(cand(0, health=1.0), req()) == 1.0
    p2 = CompositePolicy([HealthPolicy(), LatencyPolicy()])
    assert p2.score(cand(millis(100), health=1.0), req()) == 1.49
    assert p2.is_eligible(cand(millis(100), health=1.0), req()) is True
    assert p2.is_eligible(cand(millis(100), health=0.0), req()) is False


def test_T64_enterprise_default_hand_built():
    """T64: enterprise default, (100 ms, h 1.0, tp 0.8, loc 0.7, us-west) -> 1.0379999999999998; (4000 ms, h 0.2) -> 0.562."""
    p = CompositePolicy.enterprise_default()
    assert [q.name for q in p.policies] == ["health", "latency", "privacy", "locality", "cost"]
    c1 = cand(millis(100), health=1.0, throughput=0.8, locality=0.7, region="us-west")
    assert p.is_eligible(c1, req()) is True
    assert p.score(c1, req()) == 1.0379999999999998
    c2 = cand(millis(4000), health=0.2, throughput=0.8, locality=0.7, region="us-west")
    assert p.score(c2, req()) == 0.562


# §5.7 closed-form table: (h, p ms, T, score, eligible)
CLOSED_FORM = [
    (1.0, 0, 50, 1.03, True),
    (1.0, 1, 50, 1.02996, True),
    (1.0, 9, 50, 1.02964, True),
    (1.0, 11, 50, 1.02956, True),
    (1.0, 19, 50, 1.0292400000000002, True),
    (1.0, 31, 50, 1.0287600000000001, True),
    (1.0, 100, 50, 1.026, True),
    (1.0, 0, 51, 0.93, True),
    (1.0, 11, 51, 0.92956, True),
    (1.0, 6000, 50, 0.8300000000000001, False),
    (0.5, 1, 50, 0.82996, True),
    (0.5, 10, 50, 0.8295999999999999, True),
    (0.3, 0, 50, 0.75, True),
    (0.3, 10, 50, 0.7495999999999999, True),
    (0.3, 1000, 50, 0.71, True),
    (0.3, 5000, 51, 0.45, True),
]


@pytest.mark.parametrize("h,p_ms,tol,expected,eligible", CLOSED_FORM)
def test_5_7_closed_form_table(h, p_ms, tol, expected, eligible):
    """§5.7: enterprise default on router-style candidates (locality 0.5, throughput 0) gives the table score."""
    pol = CompositePolicy.enterprise_default()
    c = cand(millis(p_ms), health=h, throughput=0.0, locality=0.5)
    # T <= 50 rows hold for every tolerance in 0..50; T >= 51 rows for every tolerance >= 51.
    for t in ((0, 20, 50) if tol <= 50 else (51, 80, 100, 255)):
        r = req(tol=t)
        assert pol.score(c, r) == expected
        assert pol.is_eligible(c, r) is eligible


@pytest.mark.parametrize("h,p_ms,tol,expected,eligible", CLOSED_FORM)
def test_5_7_closed_form_privacy(h, p_ms, tol, expected, eligible):
    """§5.7: eligible iff p <= 5000 and P in {Public, Internal}."""
    pol = CompositePolicy.enterprise_default()
    c = cand(millis(p_ms), health=h, throughput=0.0, locality=0.5)
    for privacy in PrivacyLevel:
        expect = (p_ms <= 5000) and privacy in (PUBLIC, INTERNAL)
        assert pol.is_eligible(c, req(privacy=privacy, tol=tol)) is expect


@pytest.mark.parametrize("h,p_ms,tol,expected,eligible", [
    (1.0, 0, 50, 1.03, True),
    (0.3, 1000, 50, 0.71, True),
    (0.5, 10, 50, 0.8295999999999999, True),
    (1.0, 0, 80, 0.93, True),
    (0.3, 5000, 51, 0.45, True),
    (1.0, 6000, 50, None, False),
])
def test_T65_enterprise_router_style(h, p_ms, tol, expected, eligible):
    """T65: (1.0,0,T50) -> 1.03; (0.3,1000) -> 0.71; (0.5,10) -> 0.8295999999999999; (1.0,0,T80) -> 0.93; (0.3,5000,T51) -> 0.45 eligible; (1.0,6000) ineligible."""
    pol = CompositePolicy.enterprise_default()
    c = cand(millis(p_ms), health=h, throughput=0.0, locality=0.5)
    r = req(tol=tol)
    assert pol.is_eligible(c, r) is eligible
    if expected is not None:
        assert pol.score(c, r) == expected


# --------------------------------------------------------------------------- §6.4 SipHash


SIPHASH_VECTORS = [
    (0, 8556445246977061536, 0.46384582627628995),
    (1, 9886797495896358906, 0.5359643661987539),
    (42, 4798411809987085555, 0.26012242544340497),
    (1700000000000000000, 6764231952097693506, 0.3666897488830092),
    (1700000000123456789, 8928512607647135776, 0.48401563831376204),
    (1234567890123456789, 10820586954111464690, 0.5865851941607979),
]


@pytest.mark.parametrize("epoch,h,r", SIPHASH_VECTORS)
def test_6_4_siphash_vectors(epoch, h, r):
    """§6.4: SipHash-1-3 (keys 0) of the 16 LE bytes of epoch ns, and r = hash / float(2**64-1)."""
    assert hash_u128(epoch) == h
    assert weighted_random_r(epoch) == r


# --------------------------------------------------------------------------- 11.6 router


def test_T66_empty_catalog():
    """T66: empty catalog: route(Transcribe) -> 'No nodes available for capability: Transcribe'; get_candidates -> []."""
    env = Env()
    with pytest.raises(NoCapacity) as ei:
        env.router.route(req(TRANSCRIBE))
    assert str(ei.value) == "No nodes available for capability: Transcribe"
    assert ei.value == NoCapacity(TRANSCRIBE)
    assert env.router.get_candidates(req(TRANSCRIBE)) == []


def test_T67_single_node_route():
    """T67: one Unknown node after ok 50 ms -> route node-1, score 0.7498, estimated_latency 5 ms."""
    env = Env()
    env.reg("whisper", "node-1", "us-west", [TRANSCRIBE])
    env.hreg("node-1")
    env.ok("node-1", 50)
    t = env.router.route(req(TRANSCRIBE))
    assert t.node_id == "node-1"
    assert t.region_id == "us-west"
    assert t.endpoint == ""
    assert t.score == 0.7498
    assert t.estimated_latency == millis(5)


def full_flow_env(**kw) -> Env:
    env = Env(**kw)
    env.reg("whisper-v3", "us-west-gpu", "us-west", [TRANSCRIBE])
    env.reg("whisper-v3", "eu-west-gpu", "eu-west", [TRANSCRIBE])
    env.reg("llama-70b", "us-east-gpu", "us-east", [GEN, CODE])
    for n in ("us-west-gpu", "eu-west-gpu", "us-east-gpu"):
        env.hreg(n)
    env.ok("us-west-gpu", 45, 3)
    env.ok("eu-west-gpu", 120, 3)
    env.ok("us-east-gpu", 100, 1)
    return env


def test_T68_full_flow_candidates():
    """T68: get_candidates(Transcribe) -> [us-west-gpu 1.02956 (1.0, 0.9978, 11 ms), eu-west-gpu 1.0287600000000001 (1.0, 0.9938, 31 ms)]."""
    env = full_flow_env()
    cands = env.router.get_candidates(req(TRANSCRIBE))
    assert [str(c.target.node_id) for c in cands] == ["us-west-gpu", "eu-west-gpu"]
    a, b = cands
    assert (a.scores.total, a.scores.health_score, a.scores.latency_score,
            a.target.estimated_latency) == (1.02956, 1.0, 0.9978, millis(11))
    assert (b.scores.total, b.scores.health_score, b.scores.latency_score,
            b.target.estimated_latency) == (1.0287600000000001, 1.0, 0.9938, millis(31))
    for c in cands:
        assert c.eligible is True and c.rejection_reason is None
        assert c.target.score == c.scores.total
        assert c.scores.locality_score == 0.5 and c.scores.throughput_score == 0.0
        assert c.scores.cost_score == 0.5


def test_T68_full_flow_routes():
    """T68: route(Transcribe) -> us-west-gpu; Generate -> us-east-gpu 0.7495999999999999; Embed -> NoCapacity; Code -> us-east-gpu."""
    env = full_flow_env()
    assert env.router.route(req(TRANSCRIBE)).node_id == "us-west-gpu"
    g = env.router.route(req(GEN))
    assert g.node_id == "us-east-gpu"
    assert g.score == 0.7495999999999999
    assert g.estimated_latency == millis(10)
    assert env.H.get_cached_health("us-east-gpu").status is HealthState.UNKNOWN
    with pytest.raises(NoCapacity) as ei:
        env.router.route(req(EMBED))
    assert ei.value == NoCapacity(EMBED)
    assert str(ei.value) == "No nodes available for capability: Embed"
    assert env.router.route(req(CODE)).node_id == "us-east-gpu"


def test_T69_confidential_rejected():
    """T69: privacy Confidential -> AllNodesUnhealthy(Transcribe); candidates ineligible, total 0.0, 'Policy rejected', build order."""
    env = full_flow_env()
    r = req(TRANSCRIBE, privacy=CONFIDENTIAL)
    with pytest.raises(AllNodesUnhealthy) as ei:
        env.router.route(r)
    assert str(ei.value) == "All nodes unhealthy for capability: Transcribe"
    cands = env.router.get_candidates(r)
    assert [str(c.target.node_id) for c in cands] == ["us-west-gpu", "eu-west-gpu"]
    for c in cands:
        assert c.eligible is False
        assert c.scores.total == 0.0
        assert c.target.score == 0.0
        assert c.rejection_reason == "Policy rejected"


def test_T70_high_cost_tolerance():
    """T70: cost_tolerance 90 -> totals 0.92956 and 0.9287600000000001."""
    env = full_flow_env()
    cands = env.router.get_candidates(req(TRANSCRIBE, tol=90))
    assert [summary(c) for c in cands] == [("us-west-gpu", 0.92956),
                                           ("eu-west-gpu", 0.9287600000000001)]


def test_T71_registered_vs_unregistered():
    """T71: [reg/r1 0.75 (0 ms, ls 1.0), reg/r2 0.75, unreg/r1 0.71 (1000 ms, ls 0.8)]."""
    env = Env()
    env.reg("m", "reg", "r1", [EMBED])
    env.reg("m", "unreg", "r1", [EMBED])
    env.reg("m", "reg", "r2", [EMBED])
    env.hreg("reg")
    cands = env.router.get_candidates(req(EMBED))
    got = [(str(c.target.node_id), str(c.target.region_id), c.scores.total,
            c.target.estimated_latency, c.scores.latency_score) for c in cands]
    assert got == [
        ("reg", "r1", 0.75, 0, 1.0),
        ("reg", "r2", 0.75, 0, 1.0),
        ("unreg", "r1", 0.71, millis(1000), 0.8),
    ]
    assert [c.scores.health_score for c in cands] == [0.3, 0.3, 0.3]


def test_T72_open_circuit_and_lazy_half_open():
    """T72: 5 breaker failures -> NoCapacity; +30 s: state still Open, route -> a, state HalfOpen."""
    env = Env()
    env.reg("m", "a", "r", [GEN])
    for _ in range(5):
        env.CB.record_failure("a")
    with pytest.raises(NoCapacity) as ei:
        env.router.route(req(GEN))
    assert ei.value == NoCapacity(GEN)
    env.clock.advance(seconds(30))
    assert env.CB.state("a") is CircuitState.OPEN
    assert env.router.route(req(GEN)).node_id == "a"
    assert env.CB.state("a") is CircuitState.HALF_OPEN


def test_T73_half_open_side_effect_on_unhealthy():
    """T73: Unhealthy + breaker open, +31 s -> route NoCapacity and state(a) now HalfOpen."""
    env = Env()
    env.reg("m", "a", "r", [GEN])
    env.hreg("a")
    env.fail("a", 3)
    assert env.H.get_cached_health("a").status is HealthState.UNHEALTHY
    for _ in range(5):
        env.CB.record_failure("a")
    env.clock.advance(seconds(31))
    assert env.CB.state("a") is CircuitState.OPEN
    with pytest.raises(NoCapacity):
        env.router.route(req(GEN))
    assert env.CB.state("a") is CircuitState.HALF_OPEN


def test_T74_min_score_and_max_candidates():
    """T74: score 0.75: min_score 0.75 OK; 0.7500000000000001 -> AllNodesUnhealthy; max_candidates 0 -> AllNodesUnhealthy; min_score 0.99 -> error."""
    def env_with(cfg):
        env = Env(config=cfg)
        env.reg("m", "a", "r", [GEN])
        env.hreg("a")
        return env

    t = env_with(RouterConfig(min_score=0.75)).router.route(req(GEN))
    assert t.node_id == "a" and t.score == 0.75
    for cfg in (RouterConfig(min_score=0.7500000000000001), RouterConfig(max_candidates=0),
                RouterConfig(min_score=0.99)):
        with pytest.raises(AllNodesUnhealthy) as ei:
            env_with(cfg).router.route(req(GEN))
        assert ei.value == AllNodesUnhealthy(GEN)


def test_T75_stable_tie_break():
    """T75: unregistered n3, n1, n2 in that order -> candidates n3, n1, n2 (all 0.71); route -> n3."""
    env = Env()
    for n in ("n3", "n1", "n2"):
        env.reg("m", n, "r", [GEN])
    cands = env.router.get_candidates(req(GEN))
    assert [summary(c) for c in cands] == [("n3", 0.71), ("n1", 0.71), ("n2", 0.71)]
    assert env.router.route(req(GEN)).node_id == "n3"


def test_T76_unhealthy_skipped():
    """T76: degraded-node failed 5x is Unhealthy and skipped; candidates [healthy-node 1.02976 est 6 ms]; route -> healthy-node."""
    env = Env()
    env.reg("llama", "healthy-node", "us-west", [GEN])
    env.reg("llama", "degraded-node", "us-east", [GEN])
    env.hreg("healthy-node")
    env.hreg("degraded-node")
    for _ in range(5):
        env.ok("healthy-node", 20)
        env.fail("degraded-node")
    assert env.H.get_cached_health("degraded-node").status is HealthState.UNHEALTHY
    cands = env.router.get_candidates(req(GEN))
    assert [summary(c) for c in cands] == [("healthy-node", 1.02976)]
    assert cands[0].target.estimated_latency == millis(6)
    assert env.router.route(req(GEN)).node_id == "healthy-node"


def test_T77_three_candidates():
    """T77: three nodes of one model, each hreg + ok 50 ms -> 3 candidates."""
    env = Env()
    for i in range(3):
        env.reg("m", f"node-{i}", "r", [GEN])
        env.hreg(f"node-{i}")
        env.ok(f"node-{i}", 50)
    cands = env.router.get_candidates(req(GEN))
    assert len(cands) == 3
    assert sorted(str(c.target.node_id) for c in cands) == ["node-0", "node-1", "node-2"]


@pytest.mark.parametrize("strategy", [
    LoadBalanceStrategy.ROUND_ROBIN,
    LoadBalanceStrategy.LEAST_CONNECTIONS,
    LoadBalanceStrategy.CONSISTENT_HASH,
    LoadBalanceStrategy.LEAST_LATENCY,
])
def test_T78_stub_strategies_no_rotation(strategy):
    """T78: RoundRobin / LeastConnections / ConsistentHash -> the same top-ranked node on every call."""
    # one node
    env1 = Env(config=RouterConfig(strategy=strategy))
    env1.reg("m", "solo", "r", [GEN])
    assert {str(env1.router.route(req(GEN, request_id=f"r{i}")).node_id)
            for i in range(10)} == {"solo"}
    # several nodes: unreg (0.71) first in build order, then Unknown p50 0 (0.75), then Healthy (1.03)
    env = Env(config=RouterConfig(strategy=strategy))
    env.reg("m", "low", "r", [GEN])
    env.reg("m", "mid", "r", [GEN])
    env.reg("m", "top", "r", [GEN])
    env.hreg("mid")
    env.hreg("top")
    env.ok("top", 5, 2)  # Healthy, p50 0
    picks = [str(env.router.route(req(GEN, request_id=f"req-{i}")).node_id) for i in range(20)]
    assert picks == ["top"] * 20


WR_CASES = [
    (0, "wc"), (1, "wc"), (42, "wa"), (1700000000000000000, "wa"),
    (1700000000123456789, "wc"), (1234567890123456789, "wc"),
]


def weighted_env(epoch: int) -> Env:
    env = Env(config=RouterConfig(strategy=LoadBalanceStrategy.WEIGHTED_RANDOM),
              epoch_ns=lambda: epoch)
    for n in ("wa", "wb", "wc"):
        env.reg("m", n, "r", [GEN])
        env.hreg(n)
    env.ok("wa", 100, 2)
    env.ok("wb", 100, 1)
    return env


def test_T79_weighted_random_pool():
    """T79: ranked pool [wa 1.0292400000000002, wc 0.75, wb 0.7495999999999999]."""
    env = weighted_env(0)
    assert env.H.get_cached_health("wa").status is HealthState.HEALTHY
    assert ms(env.H.get_cached_health("wa").latency_p50) == 19
    assert env.H.get_cached_health("wb").status is HealthState.UNKNOWN
    assert ms(env.H.get_cached_health("wb").latency_p50) == 10
    assert ms(env.H.get_cached_health("wc").latency_p50) == 0
    cands = env.router.get_candidates(req(GEN))
    assert [summary(c) for c in cands] == [
        ("wa", 1.0292400000000002), ("wc", 0.75), ("wb", 0.7495999999999999)]


@pytest.mark.parametrize("epoch,expected", WR_CASES)
def test_T79_weighted_random_selection(epoch, expected):
    """T79: epoch 0 -> wc; 1 -> wc; 42 -> wa; 1.7e18 -> wa; 1700000000123456789 -> wc; 1234567890123456789 -> wc."""
    env = weighted_env(epoch)
    assert env.router.route(req(GEN)).node_id == expected
    # the draw depends only on the epoch reading: repeating it repeats the choice
    assert env.router.route(req(GEN)).node_id == expected


def test_T80_latency_only_below_min_score():
    """T80: [LatencyPolicy()] only, a at (Degraded, 4500 ms) -> candidate eligible total 0.09999999999999998; route -> AllNodesUnhealthy."""
    env = Env(policy=CompositePolicy([LatencyPolicy()]))
    env.reg("m", "a", "r", [GEN])
    env.hreg("a")
    env.ok("a", 45_000)
    h = env.H.get_cached_health("a")
    assert (h.status, ms(h.latency_p50)) == (HealthState.DEGRADED, 4500)
    cands = env.router.get_candidates(req(GEN))
    assert [(c.eligible, c.scores.total) for c in cands] == [(True, 0.09999999999999998)]
    with pytest.raises(AllNodesUnhealthy) as ei:
        env.router.route(req(GEN))
    assert ei.value == AllNodesUnhealthy(GEN)


def test_T81_negative_weight():
    """T81: [LatencyPolicy(weight -1.0)], unregistered node (1000 ms) -> score -0.8 < min_score -> AllNodesUnhealthy."""
    env = Env(policy=CompositePolicy([LatencyPolicy(weight=-1.0)]))
    env.reg("m", "u", "r", [GEN])
    cands = env.router.get_candidates(req(GEN))
    assert [(c.eligible, c.scores.total) for c in cands] == [(True, -0.8)]
    with pytest.raises(AllNodesUnhealthy):
        env.router.route(req(GEN))


def test_T82_privacy_policy_rejects():
    """T82: [PrivacyPolicy {us-west: Public}], request Confidential -> eligible False, 'Policy rejected'; route -> AllNodesUnhealthy."""
    env = Env(policy=CompositePolicy([PrivacyPolicy({"us-west": PUBLIC})]))
    env.reg("m", "a", "us-west", [GEN])
    env.hreg("a")
    r = req(GEN, privacy=CONFIDENTIAL)
    c0 = env.router.get_candidates(r)[0]
    assert c0.eligible is False
    assert c0.rejection_reason == "Policy rejected"
    assert c0.scores.total == 0.0
    with pytest.raises(AllNodesUnhealthy) as ei:
        env.router.route(r)
    assert str(ei.value) == "All nodes unhealthy for capability: Generate"
