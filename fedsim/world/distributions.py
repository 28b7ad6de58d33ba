"""Random distributions, registered by name so scenario files can say
``{"kind": "lognormal", "mean": 0.8, "cv": 1.5}``.

Every distribution offers two ways to draw:

* ``sample(rng)`` -- an independent draw from a sequential ``random.Random`` stream;
* ``ppf(u)`` -- the inverse CDF of a uniform ``u`` in (0, 1).  The simulator feeds it
  hash-derived uniforms (:meth:`fedsim.world.randomness.Streams.uniform`), so the same
  request attempt gets the same value in every scenario variant (common random numbers).
  It is therefore exact wherever a closed form exists, not an approximation.

Units are the caller's: seconds for service times, counts for token numbers.  Parameters
are validated once, at construction, and derived constants are precomputed there, because
``sample``/``ppf`` run once per request.  Add your own kind with
:func:`register_distribution`.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Callable, ClassVar, Iterable, Mapping, Protocol, runtime_checkable

__all__ = [
    "DISTRIBUTIONS",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "Gamma",
    "LogNormal",
    "Normal",
    "Uniform",
    "make_distribution",
    "register_distribution",
]

_STD_NORMAL = NormalDist()
_inv_cdf = _STD_NORMAL.inv_cdf


@runtime_checkable
class Distribution(Protocol):
    """A univariate distribution.  ``ppf`` must be non-decreasing in ``u``."""

    name: str

    @property
    def mean(self) -> float: ...

    def sample(self, rng: random.Random) -> float: ...

    def ppf(self, u: float) -> float: ...


# --------------------------------------------------------------------------- validation


def _real(param: str, value: Any) -> float:
    """A finite float, or a ValueError naming ``param`` (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{param} must be a real number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{param} must be finite, got {value!r}")
    return x


def _positive(param: str, value: Any) -> float:
    x = _real(param, value)
    if x <= 0.0:
        raise ValueError(f"{param} must be > 0, got {value!r}")
    return x


def _bad_u(u: float) -> None:
    """Raise for a ``u`` outside (0, 1).  Every ``ppf`` tests ``0.0 < u < 1.0`` inline (once
    per request on the hot path) and calls this only when it fails: this catches a broken
    uniform source early, since ppf(0) or ppf(1) would be -inf/inf or a math domain error
    far from the cause."""
    raise ValueError(f"ppf needs u in the open interval (0, 1), got {u!r}")


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses: normalise in __post_init__


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True, slots=True)
class Constant:
    """Always ``value``: deterministic service times, fixed token counts."""

    name: ClassVar[str] = "constant"
    value: float

    def __post_init__(self) -> None:
        _set(self, "value", _real("value", self.value))

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: random.Random) -> float:
        return self.value

    def ppf(self, u: float) -> float:
        if not 0.0 < u < 1.0:
            _bad_u(u)
        return self.value


@dataclass(frozen=True, slots=True)
class Exponential:
    """Memoryless (cv = 1); the M/M/c reference case."""

    name: ClassVar[str] = "exponential"
    mean: float
    _rate: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mean = _positive("mean", self.mean)
        _set(self, "mean", mean)
        _set(self, "_rate", 1.0 / mean)

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(self._rate)

    def ppf(self, u: float) -> float:
        if not 0.0 < u < 1.0:
            _bad_u(u)
        return -self.mean * math.log1p(-u)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Heavy right tail, parametrised by ``mean`` and coefficient of variation ``cv``
    (what one measures) rather than by the underlying normal's mu and sigma:
    sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2 / 2."""

    name: ClassVar[str] = "lognormal"
    mean: float
    cv: float
    _mu: float = field(init=False, repr=False, compare=False)
    _sigma: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mean = _positive("mean", self.mean)
        cv = _positive("cv", self.cv)
        sigma2 = math.log1p(cv * cv)
        _set(self, "mean", mean)
        _set(self, "cv", cv)
        _set(self, "_sigma", math.sqrt(sigma2))
        _set(self, "_mu", math.log(mean) - sigma2 / 2.0)

    def sample(self, rng: random.Random) -> float:
        return math.exp(rng.gauss(self._mu, self._sigma))

    def ppf(self, u: float) -> float:
        if not 0.0 < u < 1.0:
            _bad_u(u)
        return math.exp(self._mu + self._sigma * _inv_cdf(u))


@dataclass(frozen=True, slots=True)
class Gamma:
    """Gamma by ``mean`` and ``cv``: shape k = 1/cv^2, scale = mean/k.  Tunes
    variability between deterministic (cv -> 0) and beyond exponential (cv > 1)."""

    name: ClassVar[str] = "gamma"
    mean: float
    cv: float
    _shape: float = field(init=False, repr=False, compare=False)
    _scale: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mean = _positive("mean", self.mean)
        cv = _positive("cv", self.cv)
        shape = 1.0 / (cv * cv)
        _set(self, "mean", mean)
        _set(self, "cv", cv)
        _set(self, "_shape", shape)
        _set(self, "_scale", mean / shape)

    def sample(self, rng: random.Random) -> float:
        return rng.gammavariate(self._shape, self._scale)

    def ppf(self, u: float) -> float:
        if not 0.0 < u < 1.0:
            _bad_u(u)
        from scipy.special import gammaincinv  # lazy: scipy is heavy and only needed here

        return self._scale * float(gammaincinv(self._shape, u))


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniform on [low, high]; ``low == high`` is allowed (a constant)."""

    name: ClassVar[str] = "uniform"
    low: float
    high: float
    _width: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        low, high = _real("low", self.low), _real("high", self.high)
        if low > high:
            raise ValueError(f"low ({low!r}) must be <= high ({high!r})")
        _set(self, "low", low)
        _set(self, "high", high)
        _set(self, "_width", high - low)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2.0

    def sample(self, rng: random.Random) -> float:
        return self.low + self._width * rng.random()

    def ppf(self, u: float) -> float:
        if not 0.0 < u < 1.0:
            _bad_u(u)
        return self.low + self._width * u


@dataclass(frozen=True, slots=True)
class Empirical:
    """Replays measured values (e.g. a trace's token counts).  ``samples`` is stored
    sorted.  ``sample`` picks one uniformly; ``ppf`` is the nearest-rank quantile, the
    ceil(u*n)-th smallest value, so it only ever returns observed values."""

    name: ClassVar[str] = "empirical"
    samples: tuple[float, ...]
    _mean: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            values = tuple(self.samples)
        except TypeError:
            raise ValueError(f"samples must be a sequence of numbers, got {self.samples!r}") from None
        if not values:
            raise ValueError("samples must not be empty")
        values = tuple(sorted(_real(f"samples[{i}]", v) for i, v in enumerate(values)))
        _set(self, "samples", values)
        _set(self, "_mean", math.fsum(values) / len(values))

    @property
    def mean(self) -> float:
        return self._mean

    def sample(self, rng: random.Random) -> float:
        return rng.choice(self.samples)

    def ppf(self, u: float) -> float:
        if not 0.0 < u < 1.0:
            _bad_u(u)
        n = len(self.samples)
        k = math.ceil(u * n)  # 1-based rank; clamp guards u*n rounding to 0 or n+
        return self.samples[min(max(k, 1), n) - 1]


@dataclass(frozen=True, slots=True)
class Normal:
    """Normal(mean, sd) clipped at ``minimum`` (values below become ``minimum``), so a
    symmetric spread never yields negative durations.  ``mean`` is the *pre-clip* mean,
    as configured; :attr:`clipped_mean` is the mean of what is actually drawn."""

    name: ClassVar[str] = "normal"
    mean: float
    sd: float
    minimum: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "mean", _real("mean", self.mean))
        _set(self, "sd", _positive("sd", self.sd))
        _set(self, "minimum", _real("minimum", self.minimum))

    @property
    def clipped_mean(self) -> float:
        """E[max(minimum, X)] = m*Phi(a) + mean*(1 - Phi(a)) + sd*phi(a), a = (m - mean)/sd."""
        a = (self.minimum - self.mean) / self.sd
        cdf = _STD_NORMAL.cdf(a)
        return self.minimum * cdf + self.mean * (1.0 - cdf) + self.sd * _STD_NORMAL.pdf(a)

    def sample(self, rng: random.Random) -> float:
        x = rng.gauss(self.mean, self.sd)
        return x if x > self.minimum else self.minimum

    def ppf(self, u: float) -> float:
        # max() is monotone, so clipping the normal quantile is the clipped quantile.
        if not 0.0 < u < 1.0:
            _bad_u(u)
        x = self.mean + self.sd * _inv_cdf(u)
        return x if x > self.minimum else self.minimum


# --------------------------------------------------------------------------- registry

DistributionFactory = Callable[..., Distribution]

DISTRIBUTIONS: dict[str, tuple[type, str]] = {}


def register_distribution(name: str, cls: DistributionFactory, description: str,
                          *, replace: bool = False) -> None:
    """Make a distribution kind usable as ``{"kind": name, **params}`` in specs."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"distribution name must be a non-empty string, got {name!r}")
    if not callable(cls):
        raise ValueError(f"distribution {name!r}: cls must be callable, got {cls!r}")
    if name in DISTRIBUTIONS and not replace:
        raise ValueError(f"a distribution named {name!r} is already registered "
                         "(pass replace=True to override)")
    DISTRIBUTIONS[name] = (cls, description)


def _unknown_kind(what: str, kind: str, known: Iterable[str]) -> ValueError:
    known = list(known)
    # difflib misses abbreviations ('expo' vs 'exponential'), so fall back to a prefix.
    close = difflib.get_close_matches(kind, known, n=1) or (
        [k for k in known if k.startswith(kind.lower())][:1] if kind else [])
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"unknown {what} kind {kind!r}{hint}; known kinds: {', '.join(known)}")


def _split_spec(what: str, spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind is None:
        raise ValueError(f"{what} spec {dict(spec)!r} needs a 'kind' key")
    if not isinstance(kind, str):
        raise ValueError(f"{what} kind must be a string, got {kind!r}")
    return kind, params


def _construct(what: str, kind: str, factory: Callable[..., Any], params: dict[str, Any]) -> Any:
    """``factory(**params)``, with every parameter problem a ValueError naming the kind
    and the parameter (unknown names get a spelling suggestion)."""
    label = f"{what} {kind!r}"
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature: let the call decide
        sig = None
    if sig is not None:
        named = [p for p in sig.parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted = [p.name for p in named]
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            for key in params:
                if key not in accepted:
                    close = difflib.get_close_matches(str(key), accepted, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ValueError(f"{label}: unknown parameter {key!r}{hint}; "
                                     f"accepted: {', '.join(accepted) or 'none'}")
        missing = [p.name for p in named if p.default is p.empty and p.name not in params]
        if missing:
            raise ValueError(f"{label}: missing parameter(s) {', '.join(map(repr, missing))}")
    try:
        return factory(**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label}: {exc}") from exc


def make_distribution(spec: Any) -> Distribution:
    """A distribution from a spec: a Distribution (returned as is), a plain number (a
    :class:`Constant`), or a mapping ``{"kind": name, **params}``."""
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return _construct("distribution", "constant", Constant, {"value": spec})
    if isinstance(spec, Mapping):
        kind, params = _split_spec("distribution", spec)
        entry = DISTRIBUTIONS.get(kind)
        if entry is None:
            raise _unknown_kind("distribution", kind, DISTRIBUTIONS)
        return _construct("distribution", kind, entry[0], params)
    raise ValueError(f"cannot make a distribution from {spec!r}: expected a Distribution, "
                     "a number or a mapping with a 'kind' key")


register_distribution("constant", Constant, "always `value`")
register_distribution("exponential", Exponential, "exponential with `mean` (cv = 1)")
register_distribution("lognormal", LogNormal, "lognormal by `mean` and coefficient of variation `cv`")
register_distribution("gamma", Gamma, "gamma by `mean` and coefficient of variation `cv`")
register_distribution("uniform", Uniform, "uniform on [`low`, `high`]")
register_distribution("empirical", Empirical, "resample observed `samples` (nearest-rank ppf)")
register_distribution("normal", Normal, "normal(`mean`, `sd`) clipped below at `minimum` (default 0)")
