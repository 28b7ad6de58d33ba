"""Data types and enums of the federation router (spec §1).

Identifiers are ``str`` subclasses: equality and hashing are by the string, as in the
reference, and any plain ``str`` is accepted where an id is expected.  ``repr`` gives the
reference's debug form (``NodeId("x")``), which appears inside error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Optional

from .duration import format_duration, seconds

# --------------------------------------------------------------------------- debug strings

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def rust_debug_str(s: str) -> str:
    """Quote ``s`` as Rust's ``{:?}`` does for a ``String`` (spec §1.1)."""
    out = []
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append("\\u{%x}" % ord(ch))
    return '"' + "".join(out) + '"'


# --------------------------------------------------------------------------- identifiers


class _Id(str):
    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({rust_debug_str(str(self))})"

    def __str__(self) -> str:
        return str.__str__(self)


class ModelId(_Id):
    """Identifier of a model (a plain string)."""

    __slots__ = ()


class NodeId(_Id):
    """Identifier of a node (a plain string)."""

    __slots__ = ()


class RegionId(_Id):
    """Identifier of a region (a plain string)."""

    __slots__ = ()


# --------------------------------------------------------------------------- capability


class Capability:
    """What a model can do: six built-ins plus ``Capability.custom(name)`` (spec §1.2).

    Built-ins are singletons (``Capability.GENERATE``); a custom capability equals another
    custom capability with the same name and never a built-in.
    """

    __slots__ = ("_variant", "_name", "_key", "_hash")

    TRANSCRIBE: "Capability"
    SYNTHESIZE: "Capability"
    GENERATE: "Capability"
    CODE: "Capability"
    EMBED: "Capability"
    IMAGE_GEN: "Capability"

    _BUILTIN_KEYS = {
        "Transcribe": "transcribe",
        "Synthesize": "synthesize",
        "Generate": "generate",
        "Code": "code",
        "Embed": "embed",
        "ImageGen": "image_gen",
    }

    def __init__(self, variant: str, name: Optional[str] = None) -> None:
        if variant == "Custom":
            if not isinstance(name, str):
                raise TypeError("a custom capability needs a string name")
            key = "custom:" + name
        elif variant in self._BUILTIN_KEYS and name is None:
            key = self._BUILTIN_KEYS[variant]
        else:
            raise ValueError(f"unknown capability variant {variant!r}")
        self._variant = variant
        self._name = name
        self._key = key
        self._hash = hash(key)

    @classmethod
    def custom(cls, name: str) -> "Capability":
        return cls("Custom", name)

    @classmethod
    def builtins(cls) -> tuple["Capability", ...]:
        return (cls.TRANSCRIBE, cls.SYNTHESIZE, cls.GENERATE, cls.CODE, cls.EMBED, cls.IMAGE_GEN)

    @classmethod
    def parse(cls, text: str) -> "Capability":
        """Parse a catalog key (``generate``, ``image_gen``, ``custom:x``) or a variant name."""
        if text.startswith("custom:"):
            return cls.custom(text[len("custom:"):])
        for variant, key in cls._BUILTIN_KEYS.items():
            if text in (key, variant, variant.upper(), key.upper()):
                return getattr(cls, _ATTR[variant])
        raise ValueError(
            f"unknown capability {text!r}; expected one of "
            f"{', '.join(cls._BUILTIN_KEYS.values())} or custom:<name>"
        )

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def name(self) -> Optional[str]:
        """The custom name, or None for a built-in."""
        return self._name

    @property
    def is_custom(self) -> bool:
        return self._variant == "Custom"

    @property
    def key(self) -> str:
        """The catalog's index key (spec §2.1): ``generate``, ``image_gen``, ``custom:<name>``."""
        return self._key

    @property
    def debug_name(self) -> str:
        """The reference's debug rendering: ``Generate`` or ``Custom("name")``."""
        if self._variant == "Custom":
            return f"Custom({rust_debug_str(self._name)})"
        return self._variant

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Capability):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self.debug_name

    def __repr__(self) -> str:
        if self._variant == "Custom":
            return f"Capability.custom({self._name!r})"
        return f"Capability.{_ATTR[self._variant]}"

    def __reduce__(self):
        return (Capability, (self._variant, self._name))


_ATTR = {
    "Transcribe": "TRANSCRIBE",
    "Synthesize": "SYNTHESIZE",
    "Generate": "GENERATE",
    "Code": "CODE",
    "Embed": "EMBED",
    "ImageGen": "IMAGE_GEN",
}
for _variant, _attr in _ATTR.items():
    setattr(Capability, _attr, Capability(_variant))
del _variant, _attr


# --------------------------------------------------------------------------- enums


class PrivacyLevel(IntEnum):
    """Data-handling level; ordered Public < Internal < Confidential < Restricted (spec §1.3)."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3


class _DebugEnum(Enum):
    """Enum whose ``debug_name`` is the reference variant name (``HalfOpen``)."""

    @property
    def debug_name(self) -> str:
        return self.value


class HealthState(_DebugEnum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    UNHEALTHY = "Unhealthy"
    UNKNOWN = "Unknown"


class CircuitState(_DebugEnum):
    CLOSED = "Closed"
    HALF_OPEN = "HalfOpen"
    OPEN = "Open"


class DeploymentStatus(_DebugEnum):
    LOADING = "Loading"
    READY = "Ready"
    DRAINING = "Draining"
    REMOVED = "Removed"


class LoadBalanceStrategy(_DebugEnum):
    """The reference's five strategies (spec §1.10).  Default: ``LEAST_LATENCY``.

    ``registry_name`` is the name under which :mod:`fedsim.federation.strategies` knows it.
    """

    ROUND_ROBIN = "RoundRobin"
    LEAST_CONNECTIONS = "LeastConnections"
    LEAST_LATENCY = "LeastLatency"
    WEIGHTED_RANDOM = "WeightedRandom"
    CONSISTENT_HASH = "ConsistentHash"

    @classmethod
    def default(cls) -> "LoadBalanceStrategy":
        return cls.LEAST_LATENCY

    @property
    def registry_name(self) -> str:
        return self.name.lower()


# --------------------------------------------------------------------------- requests


@dataclass(slots=True)
class QoSRequirements:
    """Per-request quality-of-service asks (spec §1.4).  Only ``privacy`` and
    ``cost_tolerance`` influence reference decisions."""

    max_latency: Optional[int] = None
    min_throughput: Optional[int] = None
    privacy: PrivacyLevel = PrivacyLevel.INTERNAL
    prefer_gpu: bool = True
    cost_tolerance: int = 50

    def __post_init__(self) -> None:
        if not 0 <= self.cost_tolerance <= 255:
            raise ValueError(f"cost_tolerance is a u8 (0..255), got {self.cost_tolerance}")


@dataclass(slots=True)
class InferenceRequest:
    """A request to the gateway (spec §1.5).

    fedsim extensions, ignored by reference behaviour: ``origin_region`` (read only by the
    ``locality_from_origin`` fix) and ``session_key`` (the hash key of consistent-hash
    strategies; ``request_id`` when None).
    """

    capability: Capability
    input: bytes = b""
    qos: QoSRequirements = field(default_factory=QoSRequirements)
    request_id: str = ""
    tenant_id: Optional[str] = None
    origin_region: Optional[RegionId] = None
    session_key: Optional[str] = None

    @property
    def hash_key(self) -> str:
        return self.session_key if self.session_key is not None else self.request_id


@dataclass(slots=True)
class InferenceResponse:
    output: bytes
    served_by: NodeId
    latency: int
    tokens: Optional[int] = None


# --------------------------------------------------------------------------- catalog records


@dataclass(slots=True)
class ModelMetadata:
    model_id: ModelId
    name: str
    version: str
    capabilities: list[Capability]
    parameters: int = 0
    quantization: Optional[str] = None


@dataclass(slots=True)
class ModelDeployment:
    node_id: NodeId
    region_id: RegionId
    endpoint: str = ""
    status: DeploymentStatus = DeploymentStatus.READY


@dataclass(slots=True)
class ModelEntry:
    model_id: ModelId
    metadata: ModelMetadata
    deployments: list[ModelDeployment]


# --------------------------------------------------------------------------- health records


@dataclass(slots=True)
class NodeHealth:
    """Cached health of one node (spec §1.7).  Durations and ``last_check`` in ns."""

    node_id: NodeId
    status: HealthState = HealthState.UNKNOWN
    latency_p50: int = 0
    latency_p99: int = 0
    throughput: int = 0
    gpu_utilization: Optional[float] = None
    queue_depth: int = 0
    last_check: int = 0

    def copy(self) -> "NodeHealth":
        return NodeHealth(
            self.node_id, self.status, self.latency_p50, self.latency_p99, self.throughput,
            self.gpu_utilization, self.queue_depth, self.last_check,
        )


@dataclass(slots=True)
class HealthStatus:
    """Summary of a NodeHealth for external consumers (spec §1.7)."""

    node_id: NodeId
    state: HealthState
    latency_p50: int
    latency_p99: int
    queue_depth: int
    last_updated: int

    @classmethod
    def from_health(cls, h: NodeHealth) -> "HealthStatus":
        return cls(h.node_id, h.status, h.latency_p50, h.latency_p99, h.queue_depth, h.last_check)


# --------------------------------------------------------------------------- routing records


@dataclass(slots=True)
class RouteTarget:
    node_id: NodeId
    region_id: RegionId
    endpoint: str = ""
    estimated_latency: int = 0
    score: float = 0.0


@dataclass(slots=True)
class RouteScores:
    """Score breakdown; defaults as in the reference (health 1.0, the rest 0.5)."""

    latency_score: float = 0.5
    throughput_score: float = 0.5
    cost_score: float = 0.5
    locality_score: float = 0.5
    health_score: float = 1.0
    total: float = 0.5


@dataclass(slots=True)
class RouteCandidate:
    """A node considered for a request.  ``health_state`` is a fedsim extension (the status
    the router saw; None for hand-built candidates), read only by the ``health_policy_scores`` fix."""

    target: RouteTarget
    scores: RouteScores = field(default_factory=RouteScores)
    eligible: bool = True
    rejection_reason: Optional[str] = None
    health_state: Optional[HealthState] = None


@dataclass(slots=True)
class RouteDecision:
    """Exists in the reference but is never produced (spec §1.8)."""

    target: RouteTarget
    alternatives: list[RouteTarget] = field(default_factory=list)
    reasoning: str = ""


@dataclass(slots=True)
class SelectionCriteria:
    """Exists in the reference but is never used (spec §1.8)."""

    capability: Capability = Capability.GENERATE
    min_health: HealthState = HealthState.DEGRADED
    max_latency: Optional[int] = None
    min_privacy: PrivacyLevel = PrivacyLevel.PUBLIC
    preferred_regions: list[RegionId] = field(default_factory=list)
    excluded_nodes: list[NodeId] = field(default_factory=list)


# --------------------------------------------------------------------------- gateway stats


@dataclass(slots=True)
class GatewayStats:
    """Gateway counters (spec §1.11, §7.3).  ``avg_latency`` is in ns, a whole number of ms."""

    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    total_tokens: int = 0
    avg_latency: int = 0
    active_streams: int = 0


def _duration_repr(d: Optional[int]) -> str:  # pragma: no cover - debugging aid
    return "None" if d is None else format_duration(d)


DEFAULT_HEALTH_FOR_UNKNOWN_P50 = seconds(1)
DEFAULT_HEALTH_FOR_UNKNOWN_P99 = seconds(5)
