"""The scenario model: everything a simulation run needs, validated (pydantic).

Times are seconds (floats) and rates per second here; the YAML front end (``fedsim.scenario``)
adds units.  Distribution, service-model and arrival specs are either objects or dicts with a
``kind`` (see :mod:`.distributions`, :mod:`.service`, :mod:`.arrivals`).  Validation checks
references between sections (regions, models, nodes, gateways) so a run never starts on a
scenario that cannot mean anything.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      PrivateAttr, ValidationInfo, WithJsonSchema, field_validator,
                      model_serializer, model_validator)

from ..federation import Capability, Fixes, PrivacyLevel
from .assertions import GROUPS, METRICS, PRESETS, Check, check_group, parse_check, parse_critical
from .units import (DURATION_PATTERN, PERCENT_PATTERN, RATE_PATTERN, convert_spec,
                    parse_duration, parse_fraction)


def _number_or_string(pattern: str, description: str) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "pattern": pattern}],
                           "description": description})


Seconds = Annotated[float, BeforeValidator(parse_duration),
                    _number_or_string(DURATION_PATTERN, "seconds, or a duration like '250ms', '5m'")]
Fraction = Annotated[float, BeforeValidator(parse_fraction),
                     _number_or_string(PERCENT_PATTERN, "a fraction, or a percentage like '5%'")]
SPEC_SCHEMA = WithJsonSchema({"description": "a number, or {kind: ..., params}; see `fedsim list`"})
Spec = Annotated[Any, SPEC_SCHEMA]
MixSpec = Annotated[Any, WithJsonSchema({"description": "a value, or {value: probability}"})]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_assignment=True)


def _privacy(v: Any) -> PrivacyLevel:
    if isinstance(v, str):
        try:
            return PrivacyLevel[v.upper()]
        except KeyError:
            raise ValueError(f"unknown privacy level {v!r}; expected one of public, internal, "
                             "confidential, restricted") from None
    return PrivacyLevel(v)


class RegionSpec(_Model):
    """A region: its privacy level and cost feed the router's PrivacyPolicy / CostPolicy;
    ``traffic_share`` is the share of client traffic originating there (None: equal shares)."""

    id: str
    privacy: Annotated[PrivacyLevel, WithJsonSchema({
        "anyOf": [{"type": "string", "enum": ["public", "internal", "confidential", "restricted"]},
                  {"type": "integer", "enum": [0, 1, 2, 3]}]})] = PrivacyLevel.INTERNAL
    cost: Fraction = Field(0.5, ge=0.0, le=1.0)
    traffic_share: Optional[Fraction] = Field(None, ge=0.0)

    _v_privacy = field_validator("privacy", mode="before")(lambda cls, v: _privacy(v))


class NetworkSpec(_Model):
    """Round-trip times in seconds.  ``rtt[a][b]`` is symmetric (giving one direction is
    enough); unlisted cross-region pairs use ``default_rtt``.  ``jitter`` is added to each
    one-way hop.  A partitioned hop fails after ``partition_timeout``."""

    rtt: dict[str, dict[str, Seconds]] = Field(default_factory=dict)
    default_rtt: Seconds = Field(0.05, ge=0.0)
    intra_region_rtt: Seconds = Field(0.001, ge=0.0)
    jitter: Spec = None
    partition_timeout: Seconds = Field(1.0, gt=0.0)

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, v):
        return None if v is None else _checked(v, "distribution")

    @field_validator("rtt")
    @classmethod
    def _non_negative(cls, v):
        for a, row in v.items():
            for b, x in row.items():
                if x < 0:
                    raise ValueError(f"rtt[{a}][{b}] must be >= 0, got {x}")
        return v


class DeployedModel(_Model):
    model: str
    capabilities: list[str]

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, v):
        if not v:
            raise ValueError("a deployed model needs at least one capability")
        for c in v:
            Capability.parse(c)
        return v


class NodeGroupSpec(_Model):
    """``count`` identical nodes named ``name`` (count 1) or ``name-0 … name-(count-1)``.

    ``service`` maps a capability key (``generate``, ``embed``, ``custom:x``) to a service
    model spec; ``"*"`` is the fallback.  ``gpus`` concurrent service slots (times
    ``max_batch`` for token models); arrivals beyond ``max_queue`` waiting are rejected."""

    name: str
    region: str
    models: list[DeployedModel]
    count: int = Field(1, ge=1)
    gpus: int = Field(1, ge=1)
    max_batch: int = Field(1, ge=1)
    max_queue: Optional[int] = Field(None, ge=0)
    speed: float = Field(1.0, gt=0.0)
    service: dict[str, Spec] = Field(default_factory=lambda: {"*": {"kind": "exponential", "mean": 0.05}})
    register_health: bool = True

    @field_validator("service")
    @classmethod
    def _service(cls, v):
        out = {}
        for cap, spec in v.items():
            if cap != "*":
                Capability.parse(cap)
            out[cap] = _checked(spec, "service")
        return out

    def node_ids(self) -> list[str]:
        return [self.name] if self.count == 1 else [f"{self.name}-{i}" for i in range(self.count)]

    @field_validator("models")
    @classmethod
    def _models(cls, v):
        if not v:
            raise ValueError("a node group needs at least one deployed model")
        return v


class GatewaySpec(_Model):
    name: str
    region: str


class HealthSpec(_Model):
    check_interval: Seconds = Field(10.0, gt=0.0)
    probe_timeout: Seconds = Field(5.0, ge=0.0)
    failure_threshold: int = Field(3, ge=0)
    recovery_threshold: int = Field(2, ge=0)
    degraded_latency: Seconds = Field(1.0, ge=0.0)


class BreakerSpec(_Model):
    failure_threshold: int = Field(5, ge=0)
    reset_timeout: Seconds = Field(30.0, ge=0.0)
    half_open_successes: int = Field(3, ge=0)


class GatewayConfigSpec(_Model):
    max_retries: int = Field(3, ge=0)
    inference_timeout: Seconds = Field(30.0, ge=0.0)
    backoff_base: Seconds = Field(0.1, ge=0.0)
    backoff_cap: Seconds = Field(1.0, ge=0.0)


class RouterSpec(_Model):
    """Router settings shared by every gateway replica.

    ``policy``: ``"enterprise"`` (the reference default, with the scenario's region privacy
    levels and costs filled into its PrivacyPolicy and CostPolicy), ``"reference"`` (the
    enterprise default with no region data, exactly as shipped, Q-PRIVACY-DEFAULT), or a list
    of ``{"kind": policy name, **params}`` averaged by a CompositePolicy."""

    strategy: str = "least_latency"
    fixes: Union[list[str], str] = Field(default_factory=list)
    policy: Union[Literal["enterprise", "reference"], list[dict[str, Any]]] = "enterprise"
    max_candidates: int = Field(10, ge=0)
    min_score: float = 0.1
    health: HealthSpec = Field(default_factory=HealthSpec)
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)
    gateway: GatewayConfigSpec = Field(default_factory=GatewayConfigSpec)

    @field_validator("policy")
    @classmethod
    def _policy(cls, v):
        if isinstance(v, str):
            return v
        from ..federation.policy import POLICIES, make_policy

        out = []
        for i, item in enumerate(v):
            if "kind" not in item:
                raise ValueError(f"entry {i} has no 'kind' (one of {', '.join(POLICIES)})")
            item = {k: (x if k in ("kind", "regions", "region_costs") else convert_spec(x))
                    for k, x in item.items()}
            try:
                make_policy(str(item["kind"]), **policy_params(item, None))
            except (TypeError, ValueError) as err:
                raise ValueError(f"entry {i} ({item['kind']!r}): {err}") from None
            out.append(item)
        return out

    @field_validator("fixes")
    @classmethod
    def _fixes(cls, v):
        Fixes.of(v)
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v):
        from ..federation.strategies import make_strategy

        make_strategy(v)
        return v

    def fix_set(self) -> Fixes:
        return Fixes.of(self.fixes)


class WorkloadSpec(_Model):
    """Open loop (``arrival``) or closed loop (``clients`` with ``think_time``).

    Attribute specs are mixes (a value, or ``{value: probability}``) except token counts,
    which are distribution specs (rounded, at least 1).  ``origin_region`` defaults to the
    regions' traffic shares; ``gateway`` names the gateway to use (default: the one in the
    origin region, else the first)."""

    name: str = "workload"
    arrival: Spec = None
    clients: Optional[int] = Field(None, ge=1)
    think_time: Spec = 0.0
    capability: MixSpec = "generate"
    privacy: MixSpec = "internal"
    cost_tolerance: MixSpec = 50
    tenant: MixSpec = "default"
    origin_region: MixSpec = None
    sessions: Optional[int] = Field(None, ge=1)
    input_tokens: Spec = 256
    output_tokens: Spec = 128
    gateway: Optional[str] = None

    @field_validator("arrival")
    @classmethod
    def _arrival(cls, v):
        return None if v is None else _checked(v, "arrival")

    @field_validator("think_time", "input_tokens", "output_tokens")
    @classmethod
    def _dist(cls, v):
        return _checked(v, "distribution")

    @field_validator("capability")
    @classmethod
    def _capability(cls, v):
        return _checked_mix(v, lambda c: Capability.parse(str(c)))

    @field_validator("privacy")
    @classmethod
    def _privacy_mix(cls, v):
        return _checked_mix(v, _privacy)

    @field_validator("cost_tolerance")
    @classmethod
    def _cost(cls, v):
        def check(c):
            try:
                ok = not isinstance(c, bool) and float(c) == int(c) and 0 <= int(c) <= 255
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"cost_tolerance values are integers 0..255, found {c!r}")
        return _checked_mix(v, check)

    @field_validator("tenant", "origin_region")
    @classmethod
    def _plain_mix(cls, v):
        return None if v is None else _checked_mix(v, lambda x: x)

    @model_validator(mode="after")
    def _loop(self):
        if (self.arrival is None) == (self.clients is None):
            raise ValueError("a workload needs exactly one of 'arrival' (open loop) or "
                             "'clients' (closed loop)")
        return self


def policy_params(item: dict, scenario: Optional["Scenario"], fixes: Optional[Fixes] = None) -> dict:
    """Keyword arguments for ``make_policy`` from a scenario's policy entry: durations to ns,
    privacy names to levels, ``regions: scenario`` / ``region_costs: scenario`` filled from
    the scenario's regions (left out when ``scenario`` is None, i.e. while validating)."""
    params = {k: x for k, x in item.items() if k != "kind"}
    kind = item["kind"]
    if kind in ("locality", "cost", "health") and fixes is not None:
        params.setdefault("fixes", fixes)
    if kind == "latency" and "max_latency" in params:
        params["max_latency"] = int(round(parse_duration(params["max_latency"]) * 1e9))
    if kind == "privacy":
        if params.get("regions") == "scenario":
            params.pop("regions")
            params["region_privacy"] = ({} if scenario is None else
                                        {r.id: r.privacy for r in scenario.regions})
        elif "regions" in params:
            raise ValueError("'regions' takes only the value 'scenario'")
        if isinstance(params.get("region_privacy"), dict):
            params["region_privacy"] = {r: _privacy(lvl) for r, lvl in params["region_privacy"].items()}
    if kind == "cost" and params.get("region_costs") == "scenario":
        params["region_costs"] = {} if scenario is None else {r.id: r.cost for r in scenario.regions}
    elif kind == "cost" and isinstance(params.get("region_costs"), dict):
        params["region_costs"] = {r: parse_fraction(c) for r, c in params["region_costs"].items()}
    return params


def _checked(spec: Any, what: str) -> Any:
    """Convert units inside a free-form spec and check that it builds."""
    from .arrivals import make_arrival
    from .distributions import make_distribution
    from .service import make_service_model

    spec = convert_spec(spec)
    try:
        {"arrival": make_arrival, "distribution": make_distribution,
         "service": make_service_model}[what](spec)
    except OSError as err:
        raise ValueError(f"cannot read {err.filename}: {err.strerror}") from None
    return spec


def _checked_mix(spec: Any, check) -> Any:
    from .arrivals import make_mix

    spec = convert_spec(spec)
    mix = make_mix(spec)
    for value in mix.values:
        check(value)
    return spec


FAULT_KINDS = ("crash", "hang", "slow", "error_rate", "flapping", "gpu_throttle",
               "region_outage", "partition")


class FaultSpec(_Model):
    """A fault on ``target`` (a node id, a node group name, or for region_outage a region;
    for partition ``regions: [a, b]``).  Scheduled with ``at`` (+ ``duration``, None = to the
    end) or random with ``mtbf``/``mttr`` (exponential up and down times, per node).

    ``factor``: slow (service x factor) and gpu_throttle (speed x factor, 0 < factor <= 1);
    ``rate``: error_rate's failing fraction; ``period`` and ``down``: flapping cycles."""

    kind: Literal["crash", "hang", "slow", "error_rate", "flapping", "gpu_throttle",
                  "region_outage", "partition"]
    target: Optional[str] = None
    regions: Optional[list[str]] = None
    at: Optional[Seconds] = Field(None, ge=0.0)
    duration: Optional[Seconds] = Field(None, gt=0.0)
    mtbf: Optional[Seconds] = Field(None, gt=0.0)
    mttr: Optional[Seconds] = Field(None, gt=0.0)
    factor: Optional[float] = Field(None, gt=0.0)
    rate: Optional[Fraction] = Field(None, ge=0.0, le=1.0)
    period: Optional[Seconds] = Field(None, gt=0.0)
    down: Optional[Seconds] = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _shape(self):
        scheduled, random_ = self.at is not None, self.mtbf is not None or self.mttr is not None
        if scheduled == random_:
            raise ValueError("a fault is either scheduled ('at', optional 'duration') or random "
                             "('mtbf' and 'mttr')")
        if random_ and (self.mtbf is None or self.mttr is None):
            raise ValueError("a random fault needs both 'mtbf' and 'mttr'")
        if self.kind == "partition":
            if not self.regions or len(self.regions) != 2:
                raise ValueError("a partition needs 'regions: [a, b]'")
        elif self.target is None:
            raise ValueError(f"a {self.kind} fault needs a 'target'")
        if self.kind in ("slow", "gpu_throttle") and self.factor is None:
            raise ValueError(f"a {self.kind} fault needs a 'factor'")
        if self.kind == "gpu_throttle" and self.factor is not None and self.factor > 1:
            raise ValueError("gpu_throttle 'factor' is the remaining speed, in (0, 1]")
        if self.kind == "error_rate" and self.rate is None:
            raise ValueError("an error_rate fault needs a 'rate'")
        if self.kind == "flapping" and (self.period is None or self.down is None):
            raise ValueError("a flapping fault needs 'period' and 'down'")
        if self.kind == "flapping" and self.down >= self.period:
            raise ValueError("flapping 'down' must be shorter than 'period'")
        return self


_CHECK_SCHEMA = {"type": "string",
                 "description": "METRIC[.STAT] OP VALUE, e.g. 'p99_latency <= 800ms', "
                                "'success_rate >= 0.99', 'p99_latency.upper95 <= 800ms'"}
_ASSERTION_SCHEMA = WithJsonSchema({
    "anyOf": [
        {"type": "string", "description": "a check (METRIC[.STAT] OP VALUE) or a preset ("
                                          + ", ".join(PRESETS) + ")"},
        {"type": "object", "additionalProperties": False, "required": ["check"],
         "properties": {
             "name": {"type": "string", "description": "test name (default: the check)"},
             "check": _CHECK_SCHEMA,
             "by": {"type": "string", "enum": list(GROUPS),
                    "description": "evaluate per group"},
             "critical": {"type": "string",
                          "description": "the playbook's 'critical' column: a second condition "
                                         "on the same metric (a check, or just OP VALUE); "
                                         "failing it marks the failure critical"}}},
    ],
    "description": "an SLO assertion; metrics: " + ", ".join(METRICS)})


class AssertionSpec(_Model):
    """One SLO assertion (see :mod:`fedsim.world.assertions`): a ``check`` such as
    ``p99_latency <= 800ms``, evaluated over the whole run or per group (``by``), with an
    optional ``critical`` condition on the same metric.  In files it is a string (the
    check) or a mapping; the string ``playbook`` expands to the playbook's four (§9.3).

    ``name`` defaults to the check (plus `` by <group>``); names are unique per scenario."""

    check: Optional[Check] = None
    by: Optional[str] = None
    critical: Optional[Check] = None
    name: Optional[str] = None
    preset: Optional[str] = Field(None, exclude=True)
    _index: int = PrivateAttr(0)  # position of the item in the file's list

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        if isinstance(v, str):
            return {"preset": v.strip()} if v.strip() in PRESETS else {"check": v}
        if isinstance(v, dict) and "preset" in v:
            raise ValueError("unknown key 'preset'; write a preset as a list item on its own "
                             f"(assertions: [{', '.join(PRESETS)}])")
        return v

    @field_validator("check", mode="before")
    @classmethod
    def _check(cls, v):
        return None if v is None else parse_check(v)

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, v, info: ValidationInfo):
        if v is None:
            return None
        if not isinstance(v, str):
            raise ValueError(f"expected one of {', '.join(GROUPS)}; found {v!r}")
        check = info.data.get("check")
        # without a valid check (reported there) only the group name can be checked
        return check_group(check.metric if check is not None else "p50_latency", v)

    @field_validator("critical", mode="before")
    @classmethod
    def _critical(cls, v, info: ValidationInfo):
        if v is None:
            return None
        check = info.data.get("check")
        if check is None:  # the check itself is wrong: reported there
            return None
        return parse_critical(v if isinstance(v, (str, Check)) else str(v), check)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is not None and not v.strip():
            raise ValueError("an assertion name cannot be empty")
        return v

    @model_validator(mode="after")
    def _complete(self):
        if self.preset is None and self.check is None:
            raise ValueError("an assertion needs a 'check', e.g. 'p99_latency <= 800ms'")
        return self

    @model_serializer(mode="plain")
    def _dump(self) -> Any:
        """The file form (a mapping of strings), so a dumped scenario loads again."""
        if self.preset is not None:
            return self.preset
        out: dict[str, Any] = {"name": self.title, "check": str(self.check)}
        if self.by is not None:
            out["by"] = self.by
        if self.critical is not None:
            out["critical"] = str(self.critical)
        return out

    @property
    def title(self) -> str:
        """The assertion's name: ``name``, else the check (plus `` by <group>``)."""
        if self.name is not None:
            return self.name
        text = str(self.check) if self.check is not None else str(self.preset)
        return text + (f" by {self.by}" if self.by else "")

    @property
    def metric(self) -> str:
        return self.check.metric

    @property
    def source_index(self) -> int:
        """Index of the item in the file's ``assertions:`` list (presets share theirs)."""
        return self._index


def _expand_assertions(items: list[AssertionSpec]) -> list[AssertionSpec]:
    out: list[AssertionSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        expanded = ([AssertionSpec.model_validate(d) for d in PRESETS[item.preset]]
                    if item.preset is not None else [item])
        for a in expanded:
            a._index = i
            if a.title in seen:
                raise ValueError(f"assertions[{i}]: duplicate assertion name {a.title!r} (also "
                                 f"assertions[{seen[a.title]}]); give one a different 'name'")
            seen[a.title] = i
            out.append(a)
    return out


Assertions = Annotated[list[Annotated[AssertionSpec, _ASSERTION_SCHEMA]],
                       AfterValidator(_expand_assertions)]


class Scenario(_Model):
    """A complete world.  Build it in Python, or load it from YAML (issue 4)."""

    name: str = "scenario"
    seed: int = Field(0, ge=0)
    duration: Seconds = Field(..., gt=0.0)
    warmup: Seconds = Field(0.0, ge=0.0)
    replications: int = Field(1, ge=1)
    sample_interval: Seconds = Field(1.0, gt=0.0)
    regions: list[RegionSpec]
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    nodes: list[NodeGroupSpec]
    gateways: list[GatewaySpec] = Field(default_factory=list)
    router: RouterSpec = Field(default_factory=RouterSpec)
    workloads: list[WorkloadSpec]
    faults: list[FaultSpec] = Field(default_factory=list)
    assertions: Assertions = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self):
        regions = [r.id for r in self.regions]
        if not regions:
            raise ValueError("regions: a scenario needs at least one region")
        _unique("regions", "id", regions)
        rset = set(regions)
        if self.warmup >= self.duration:
            raise ValueError(f"warmup: {self.warmup:g} s must be shorter than duration "
                             f"({self.duration:g} s)")
        for i, g in enumerate(self.gateways):
            _known(f"gateways[{i}].region", g.region, rset)
        _unique("gateways", "name", [g.name for g in self.gateways])
        node_ids: list[str] = []
        served: set[Capability] = set()
        for i, grp in enumerate(self.nodes):
            _known(f"nodes[{i}].region", grp.region, rset)
            node_ids.extend(grp.node_ids())
            for m in grp.models:
                served.update(Capability.parse(c) for c in m.capabilities)
            if "*" not in grp.service:
                for m in grp.models:
                    for c in m.capabilities:
                        if Capability.parse(c).key not in grp.service:
                            raise ValueError(
                                f"nodes[{i}].service: no service model for capability {c!r} "
                                f"(node group {grp.name!r}); expected a {c!r} or '*' entry, "
                                f"found {', '.join(map(repr, grp.service)) or 'none'}")
        seen_ids: set[str] = set()
        for i, grp in enumerate(self.nodes):
            for node_id in grp.node_ids():
                if node_id in seen_ids:
                    raise ValueError(f"nodes[{i}].name: duplicate node id {node_id!r} "
                                     "(node ids must be unique across groups)")
                seen_ids.add(node_id)
        groups = {g.name for g in self.nodes}
        for a, row in self.network.rtt.items():
            _known(f"network.rtt.{a}", a, rset)
            for b in row:
                _known(f"network.rtt.{a}.{b}", b, rset)
        gw_names = {g.name for g in self.gateways}
        for i, w in enumerate(self.workloads):
            if w.gateway is not None and self.gateways:
                _known(f"workloads[{i}].gateway", w.gateway, gw_names)
            for cap in _mix_values(w.capability):
                c = Capability.parse(str(cap))
                if c not in served:
                    raise ValueError(
                        f"workloads[{i}].capability: no node serves {cap!r}; served: "
                        f"{', '.join(sorted(x.key for x in served))}")
            for reg in _mix_values(w.origin_region):
                _known(f"workloads[{i}].origin_region", reg, rset)
        for i, f in enumerate(self.faults):
            if f.kind == "partition":
                for r in f.regions:
                    _known(f"faults[{i}].regions", r, rset)
            elif f.kind == "region_outage":
                _known(f"faults[{i}].target", f.target, rset)
            else:
                _known(f"faults[{i}].target", f.target, set(node_ids) | groups)
        return self

    def fixes(self) -> Fixes:
        return self.router.fix_set()


def _mix_values(spec: Any) -> list:
    if spec is None:
        return []
    if isinstance(spec, dict):
        return list(spec)
    return [spec]


def _unique(section: str, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"{section}[{i}].{key}: duplicate {key} {n!r}")
        seen.add(n)


def _known(path: str, value: str, known: set[str]) -> None:
    if value not in known:
        import difflib

        close = difflib.get_close_matches(str(value), sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{path}: {value!r} is not defined{hint} (defined: "
                         f"{', '.join(sorted(known))})")
