"""fedsim.federation: a faithful Python implementation of the APR Federation router
(apr-cli 0.30), specified in ``apr-federation-spec.md``.

Pure routing logic: no SimPy, every time reading through an injectable clock.  Defaults
reproduce the reference as shipped, quirks included; :class:`Fixes` switches named quirks
to the documented behaviour.
"""

from .catalog import ModelCatalog
from .circuit import CircuitBreaker, CircuitBreakerConfig, CircuitRecord
from .clock import WALL_CLOCK, Clock, EpochSource, ManualClock, WallClock, wall_epoch_ns
from .duration import NS_PER_MS, NS_PER_S, NS_PER_US, format_duration, micros, millis, ms, seconds
from .errors import (
    AllNodesUnhealthy,
    CircuitOpen,
    FederationError,
    Internal,
    InternalError,
    NoCapacity,
    NodeUnreachable,
    PrivacyViolation,
    QoSViolation,
    Timeout,
)
from .executor import (
    Execute,
    Failure,
    NodeExecutor,
    Outcome,
    Sleep,
    Success,
    execute_sync,
    reference_stub_executor,
    run_sync,
)
from .fixes import ALL_FIXES, FIX_DESCRIPTIONS, NO_FIXES, Fixes
from .gateway import AttemptEvent, FederationGateway, GatewayBuilder, GatewayConfig, TokenStream
from .health import HealthChecker, HealthConfig, ProbeResult
from .load import LoadTracker
from .middleware import GatewayMiddleware, LoggingMiddleware, Middleware, RateLimitMiddleware
from .policy import (
    POLICIES,
    CompositePolicy,
    CostPolicy,
    HealthPolicy,
    LatencyPolicy,
    LocalityPolicy,
    PrivacyPolicy,
    RoutingPolicy,
    make_policy,
    policies_changed,
    register_policy,
)
from .index import CandidateIndex
from .router import Router, RouterBuilder, RouterConfig
from .strategies import STRATEGIES, HashRing, Strategy, make_strategy, register_strategy
from .tui import FederationApp, FederationTab, RoutingRecord, truncate
from .types import (
    Capability,
    CircuitState,
    DeploymentStatus,
    GatewayStats,
    HealthState,
    HealthStatus,
    InferenceRequest,
    InferenceResponse,
    LoadBalanceStrategy,
    ModelDeployment,
    ModelEntry,
    ModelId,
    ModelMetadata,
    NodeHealth,
    NodeId,
    PrivacyLevel,
    QoSRequirements,
    RegionId,
    RouteCandidate,
    RouteDecision,
    RouteScores,
    RouteTarget,
    SelectionCriteria,
)

__all__ = [name for name in dir() if not name.startswith("_")]
