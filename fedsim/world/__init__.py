"""fedsim.world: the SimPy model that drives the real router.

Regions and the network between them, GPU nodes with queues and service models, gateway
replicas each running their own ``fedsim.federation`` router, client workloads and faults.
SimPy time is integer nanoseconds, so every router clock reading is exact.

    from fedsim.world import Scenario, run
    result = run(Scenario(...), seed=1)
    result.requests, result.attempts, result.timeseries, result.events, result.summary()
"""

from .arrivals import ARRIVALS, Mix, make_arrival, make_mix, register_arrival
from .clock import SimClock
from .distributions import DISTRIBUTIONS, make_distribution, register_distribution
from .randomness import Streams
from .result import Result
from .scenario import (
    FAULT_KINDS,
    AssertionSpec,
    BreakerSpec,
    DeployedModel,
    FaultSpec,
    GatewayConfigSpec,
    GatewaySpec,
    HealthSpec,
    NetworkSpec,
    NodeGroupSpec,
    RegionSpec,
    RouterSpec,
    Scenario,
    WorkloadSpec,
)
from .service import SERVICE_MODELS, ServiceTime, make_service_model, register_service_model
from .simulation import World, run

__all__ = [name for name in dir() if not name.startswith("_")]
