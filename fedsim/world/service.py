"""Service-time models: how long a GPU takes to serve one request of a capability.

A node asks its capability's model once per request, when the request starts service,
with the request's common-random-number uniform ``u``, its token counts and the number
of sequences already running on the same GPU.  The model answers in seconds at nominal
speed; node speed, throttling and slow faults are applied by the caller.

Specs (scenario files) are a ServiceModel, a Distribution, a number (constant seconds),
or a mapping whose ``kind`` is a distribution kind (service time drawn from it) or a
registered service-model kind such as ``"tokens"``.  Add kinds with
:func:`register_service_model`.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol, runtime_checkable

from .distributions import (
    DISTRIBUTIONS,
    Distribution,
    _construct,
    _real,
    _split_spec,
    _unknown_kind,
    make_distribution,
)

__all__ = [
    "SERVICE_MODELS",
    "DistributionService",
    "ServiceModel",
    "ServiceTime",
    "TokenService",
    "make_service_model",
    "register_service_model",
]

# The smallest uniform fedsim.world.randomness.Streams.uniform can return: 0.5 * 2**-53.
_U_MIN = 0.5 / (1 << 53)


@dataclass(frozen=True, slots=True)
class ServiceTime:
    """One request's service, in seconds: ``total`` occupancy of the slot, and for
    token models the time to first token and time per output token."""

    total: float
    ttft: Optional[float] = None
    tpot: Optional[float] = None


@runtime_checkable
class ServiceModel(Protocol):
    """``u`` is the request's uniform in (0, 1); ``running`` (>= 0) counts the
    sequences already in service on the same GPU when this one starts."""

    def service(self, u: float, input_tokens: int, output_tokens: int,
                running: int) -> ServiceTime: ...


@dataclass(frozen=True, slots=True)
class DistributionService:
    """Service time drawn by inverse CDF from ``dist``, ignoring tokens and batching:
    the classic queueing-model view.  ``dist`` may be any distribution spec."""

    dist: Distribution

    def __post_init__(self) -> None:
        dist = make_distribution(self.dist)
        # ppf is non-decreasing, so its value at the smallest reachable u bounds every draw.
        low = dist.ppf(_U_MIN)
        if low < 0:
            raise ValueError(f"service-time distribution {dist!r} can produce negative "
                             f"times (ppf({_U_MIN:.3g}) = {low!r})")
        object.__setattr__(self, "dist", dist)

    def service(self, u: float, input_tokens: int, output_tokens: int,
                running: int) -> ServiceTime:
        return ServiceTime(self.dist.ppf(u))


@dataclass(frozen=True, slots=True)
class TokenService:
    """A continuous-batching approximation of LLM serving (seconds per token).

    One decode iteration emits a token for every running sequence and slows down with the
    batch: ``iteration = decode_per_token * (1 + batch_slowdown * running)``.  Then
    ``prefill = overhead + prefill_per_token * input_tokens``, ``ttft = prefill +
    iteration``, ``tpot = iteration`` and ``total = prefill + max(output_tokens, 1) *
    iteration``.

    The batch size is taken at admission and held for the whole request: an
    approximation that keeps one event per request instead of one per iteration.
    ``u`` is unused; the randomness lives in the token counts.
    """

    prefill_per_token: float
    decode_per_token: float
    batch_slowdown: float = 0.0
    overhead: float = 0.0

    def __post_init__(self) -> None:
        for param in ("prefill_per_token", "decode_per_token", "batch_slowdown", "overhead"):
            x = _real(param, getattr(self, param))
            if x < 0:
                raise ValueError(f"{param} must be >= 0, got {x!r}")
            object.__setattr__(self, param, x)

    def service(self, u: float, input_tokens: int, output_tokens: int,
                running: int) -> ServiceTime:
        if running < 0 or input_tokens < 0 or output_tokens < 0:
            raise ValueError(f"token counts and running must be >= 0, got input_tokens="
                             f"{input_tokens}, output_tokens={output_tokens}, running={running}")
        iteration = self.decode_per_token * (1.0 + self.batch_slowdown * running)
        prefill = self.overhead + self.prefill_per_token * input_tokens
        total = prefill + (output_tokens if output_tokens > 1 else 1) * iteration
        return ServiceTime(total, prefill + iteration, iteration)


# --------------------------------------------------------------------------- registry

ServiceModelFactory = Callable[..., ServiceModel]

SERVICE_MODELS: dict[str, tuple[ServiceModelFactory, str]] = {}


def register_service_model(name: str, factory: ServiceModelFactory, description: str,
                           *, replace: bool = False) -> None:
    """Make a service-model kind usable as ``{"kind": name, **params}``.  A name that is
    taken, by a service model or by a distribution kind it would shadow, needs
    ``replace=True``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"service model name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ValueError(f"service model {name!r}: factory must be callable, got {factory!r}")
    if not replace:
        if name in SERVICE_MODELS:
            raise ValueError(f"a service model named {name!r} is already registered "
                             "(pass replace=True to override)")
        if name in DISTRIBUTIONS:
            raise ValueError(f"{name!r} is a distribution kind; a service model of that name "
                             "would shadow it (pass replace=True to do so anyway)")
    SERVICE_MODELS[name] = (factory, description)


def make_service_model(spec: Any) -> ServiceModel:
    """A service model from a spec: a ServiceModel (returned as is), a Distribution or a
    number (constant seconds), or ``{"kind": ...}`` naming a service-model kind (checked
    first) or a distribution kind."""
    if isinstance(spec, ServiceModel):
        return spec
    if isinstance(spec, Distribution) or (isinstance(spec, numbers.Real)
                                          and not isinstance(spec, bool)):
        return DistributionService(make_distribution(spec))
    if isinstance(spec, Mapping):
        kind, params = _split_spec("service model", spec)
        entry = SERVICE_MODELS.get(kind)
        if entry is not None:
            return _construct("service model", kind, entry[0], params)
        if kind in DISTRIBUTIONS:
            return DistributionService(make_distribution(spec))
        raise _unknown_kind("service model", kind, [*SERVICE_MODELS, *DISTRIBUTIONS])
    raise ValueError(f"cannot make a service model from {spec!r}: expected a ServiceModel, "
                     "a Distribution, a number or a mapping with a 'kind' key")


register_service_model("tokens", TokenService,
                       "continuous-batching token model: prefill + output tokens x iteration")
