"""Open-loop arrival processes and categorical mixes (pure Python, no SimPy).

An :class:`ArrivalProcess` turns a seeded ``random.Random`` and a time window into absolute
arrival times in seconds.  Processes are small frozen dataclasses, so a scenario can hold,
compare and print them; the world's driver pulls times lazily from :meth:`times` and
schedules one request per time.  Build them directly or from ``{"kind": ..., **params}``
with :func:`make_arrival`; add kinds with :func:`register_arrival`.

Time-varying rates (``diurnal``, ``onoff``, ``step``, ``ramp``) are functions of *absolute*
time, so splitting a run into windows (say warm-up then measurement) does not shift the
pattern.  Only ``constant`` (first arrival one interval after ``start``) and ``trace``
(timestamps relative to ``start``) are anchored at the window's start.

Exponential gaps are drawn inline as ``-log(1 - U) / rate`` from ``rng.random()`` rather
than with ``rng.expovariate``, so the stream of times depends only on the seed and not on
the Python version's ``expovariate``.

:class:`Mix` is the categorical distribution used for request attributes (capability,
privacy, tenant, ...): one ``rng.random()`` and a bisect per sample.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import math
import os
import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    ClassVar,
    Generic,
    Iterator,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    TypeVar,
    Union,
    runtime_checkable,
)

__all__ = [
    "ARRIVALS",
    "ArrivalProcess",
    "Constant",
    "Diurnal",
    "Mix",
    "OnOff",
    "Poisson",
    "Ramp",
    "Step",
    "Trace",
    "make_arrival",
    "make_mix",
    "register_arrival",
]

_log = math.log
_INF = math.inf
_nextafter = math.nextafter
_TWO_PI = 2.0 * math.pi


@runtime_checkable
class ArrivalProcess(Protocol):
    """An open-loop arrival process.

    ``times`` yields absolute arrival times (seconds) in ``[start, end)``, strictly
    increasing (non-decreasing for replayed traces, which may repeat a timestamp).
    ``end`` may be ``math.inf`` for an unbounded stream.  ``mean_rate`` is the expected
    number of arrivals per second over a finite window (exact for deterministic kinds).
    """

    name: str

    def times(self, rng: random.Random, start: float, end: float) -> Iterator[float]: ...

    def mean_rate(self, start: float, end: float) -> float: ...


# --------------------------------------------------------------------------- validation


def _number(owner: str, param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: {param} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{owner}: {param} must be finite, got {value!r}")
    return v


def _positive(owner: str, param: str, value: Any) -> float:
    v = _number(owner, param, value)
    if v <= 0.0:
        raise ValueError(f"{owner}: {param} must be > 0, got {value!r}")
    return v


def _non_negative(owner: str, param: str, value: Any) -> float:
    v = _number(owner, param, value)
    if v < 0.0:
        raise ValueError(f"{owner}: {param} must be >= 0, got {value!r}")
    return v


def _set(obj: Any, **values: Any) -> None:
    for k, v in values.items():
        object.__setattr__(obj, k, v)


def _check_window(start: float, end: float) -> None:
    """``times`` windows: finite start, ``end >= start`` (``end`` may be +inf)."""
    if not math.isfinite(start):
        raise ValueError(f"window start must be finite, got {start!r}")
    if math.isnan(end) or end < start:
        raise ValueError(f"window end ({end!r}) must be >= start ({start!r})")


def _check_finite_window(start: float, end: float) -> float:
    """``mean_rate`` windows: finite and non-empty; returns the duration."""
    if not (math.isfinite(start) and math.isfinite(end)) or not end > start:
        raise ValueError(f"mean_rate needs a finite window with end > start, got "
                         f"[{start!r}, {end!r})")
    return end - start


# --------------------------------------------------------------------------- generators


def _poisson_between(rng: random.Random, a: float, b: float, rate: float) -> Iterator[float]:
    """Homogeneous Poisson arrivals in ``[a, b)``.  Restarting at ``a`` is exact by
    memorylessness, which is what lets piecewise kinds chain segments.  A gap that rounds
    to zero at large ``t`` is bumped one ulp so times stay strictly increasing."""
    if rate <= 0.0 or not a < b:
        return
    random_ = rng.random
    t = a
    while True:
        nt = t - _log(1.0 - random_()) / rate
        t = nt if nt > t else _nextafter(t, _INF)
        if t >= b:
            return
        yield t


def _thinned(rng: random.Random, a: float, b: float, lmax: float,
             rate: Callable[[float], float]) -> Iterator[float]:
    """Non-homogeneous Poisson in ``[a, b)`` by Lewis–Shedler thinning: candidates at the
    bound ``lmax``, each kept with probability ``rate(t) / lmax`` (requires
    ``rate <= lmax`` on the interval)."""
    if lmax <= 0.0 or not a < b:
        return
    random_ = rng.random
    t = a
    while True:
        nt = t - _log(1.0 - random_()) / lmax
        t = nt if nt > t else _nextafter(t, _INF)
        if t >= b:
            return
        if random_() * lmax < rate(t):
            yield t


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True, slots=True)
class Poisson:
    """Poisson arrivals at ``rate`` per second: the memoryless baseline."""

    name: ClassVar[str] = "poisson"
    rate: float

    def __post_init__(self) -> None:
        _set(self, rate=_positive("poisson", "rate", self.rate))

    def times(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        _check_window(start, end)
        return _poisson_between(rng, start, end, self.rate)

    def mean_rate(self, start: float, end: float) -> float:
        _check_finite_window(start, end)
        return self.rate


@dataclass(frozen=True, slots=True)
class Constant:
    """Evenly spaced arrivals, ``1/rate`` apart: the k-th at ``start + k/rate`` (k >= 1).

    The first arrival is one interval *after* ``start`` rather than at it, so a window of
    length T holds ``ceil(T*rate) - 1`` arrivals and none coincides with the set-up events
    the simulation runs at ``start``.  Each time is computed from ``k`` (not by repeated
    addition), so spacing does not drift.  ``rng`` is not used.
    """

    name: ClassVar[str] = "constant"
    rate: float

    def __post_init__(self) -> None:
        _set(self, rate=_positive("constant", "rate", self.rate))

    def times(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        _check_window(start, end)
        return self._gen(start, end)

    def _gen(self, start: float, end: float) -> Iterator[float]:
        rate = self.rate
        k = 1
        last = -_INF
        while True:
            t = start + k / rate
            if t <= last:  # interval below one ulp of t: keep strictly increasing
                t = _nextafter(last, _INF)
            if t >= end:
                return
            yield t
            last = t
            k += 1

    def mean_rate(self, start: float, end: float) -> float:
        duration = _check_finite_window(start, end)
        rate = self.rate
        n = max(0, math.ceil(duration * rate) - 1)
        # fix the float estimate against the generator's own expression
        while start + (n + 1) / rate < end:
            n += 1
        while n > 0 and start + n / rate >= end:
            n -= 1
        return n / duration


@dataclass(frozen=True, slots=True)
class OnOff:
    """Bursty traffic: ``on`` seconds at ``on_rate``, then ``off`` seconds at ``off_rate``
    (default silence), repeating; Poisson within each period.

    Cycles are anchored at t = 0 (absolute time): period ``k`` is on during
    ``[k*(on+off), k*(on+off) + on)``, so a window that starts mid-cycle sees the same
    schedule as a run from 0.
    """

    name: ClassVar[str] = "onoff"
    on_rate: float
    on: float
    off: float
    off_rate: float = 0.0

    def __post_init__(self) -> None:
        _set(self,
             on_rate=_positive("onoff", "on_rate", self.on_rate),
             on=_positive("onoff", "on", self.on),
             off=_non_negative("onoff", "off", self.off),
             off_rate=_non_negative("onoff", "off_rate", self.off_rate))

    def times(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        _check_window(start, end)
        return self._gen(rng, start, end)

    def _gen(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        cycle = self.on + self.off
        k = math.floor(start / cycle)
        p = k * cycle
        while p < end:
            p_next = (k + 1) * cycle
            mid = p + self.on
            yield from _poisson_between(rng, max(start, p), min(end, mid), self.on_rate)
            yield from _poisson_between(rng, max(start, mid), min(end, p_next), self.off_rate)
            k += 1
            p = p_next

    def _cumulative(self, t: float) -> float:
        cycle = self.on + self.off
        k = math.floor(t / cycle)
        r = t - k * cycle
        per_cycle = self.on * self.on_rate + self.off * self.off_rate
        return k * per_cycle + self.on_rate * min(r, self.on) + self.off_rate * max(0.0, r - self.on)

    def mean_rate(self, start: float, end: float) -> float:
        duration = _check_finite_window(start, end)
        return (self._cumulative(end) - self._cumulative(start)) / duration


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Diurnal:
    """Daily (or any ``period``) cycle:
    ``rate(t) = mean_rate * (1 + amplitude * sin(2*pi*t/period + phase))``.

    Non-homogeneous Poisson by thinning at ``mean_rate * (1 + amplitude)``; ``amplitude``
    in [0, 1] keeps the rate non-negative.  ``t`` is absolute, so ``phase`` places the peak.

    The constructor parameter ``mean_rate`` is stored as :attr:`mean` because the protocol
    method :meth:`mean_rate` needs the name.
    """

    name: ClassVar[str] = "diurnal"
    mean: float
    amplitude: float
    period: float
    phase: float

    def __init__(self, mean_rate: float, amplitude: float, period: float = 86400.0,
                 phase: float = 0.0) -> None:
        amp = _non_negative("diurnal", "amplitude", amplitude)
        if amp > 1.0:
            raise ValueError(f"diurnal: amplitude must be in [0, 1], got {amplitude!r}")
        _set(self,
             mean=_positive("diurnal", "mean_rate", mean_rate),
             amplitude=amp,
             period=_positive("diurnal", "period", period),
             phase=_number("diurnal", "phase", phase))

    def __repr__(self) -> str:
        return (f"Diurnal(mean_rate={self.mean!r}, amplitude={self.amplitude!r}, "
                f"period={self.period!r}, phase={self.phase!r})")

    def times(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        _check_window(start, end)
        mean, amp = self.mean, self.amplitude
        omega, phase = _TWO_PI / self.period, self.phase
        sin = math.sin

        def rate(t: float) -> float:
            return mean * (1.0 + amp * sin(omega * t + phase))

        return _thinned(rng, start, end, mean * (1.0 + amp), rate)

    def mean_rate(self, start: float, end: float) -> float:
        duration = _check_finite_window(start, end)
        omega = _TWO_PI / self.period
        integral = self.mean * (duration + self.amplitude / omega * (
            math.cos(omega * start + self.phase) - math.cos(omega * end + self.phase)))
        return integral / duration


@dataclass(frozen=True, slots=True)
class Step:
    """Piecewise-constant Poisson: ``steps`` is ``[(at_time, rate), ...]`` sorted by time;
    the rate is 0 before the first step and each rate holds until the next step.  Handy for
    load steps and capacity tests."""

    name: ClassVar[str] = "step"
    steps: Sequence[tuple[float, float]]
    _at: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _rates: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, Sequence) \
                or not self.steps:
            raise ValueError(f"step: steps must be a non-empty list of (at_time, rate) pairs, "
                             f"got {self.steps!r}")
        ats: list[float] = []
        rates: list[float] = []
        for i, pair in enumerate(self.steps):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"step: steps[{i}] must be an (at_time, rate) pair, got {pair!r}")
            at = _number("step", f"steps[{i}] at_time", pair[0])
            rate = _non_negative("step", f"steps[{i}] rate", pair[1])
            if ats and at <= ats[-1]:
                raise ValueError(f"step: steps[{i}] at_time {at!r} is not after the previous "
                                 f"step's {ats[-1]!r} (steps must be sorted by time)")
            ats.append(at)
            rates.append(rate)
        _set(self, steps=tuple(zip(ats, rates)), _at=tuple(ats), _rates=tuple(rates))

    def times(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        _check_window(start, end)
        return self._gen(rng, start, end)

    def _gen(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        ats, rates = self._at, self._rates
        i = bisect_right(ats, start) - 1  # segment holding start; -1 = before the first step
        if i < 0:
            i = 0
            a = ats[0]
        else:
            a = start
        n = len(ats)
        while a < end and i < n:
            b = ats[i + 1] if i + 1 < n else _INF
            yield from _poisson_between(rng, a, min(b, end), rates[i])
            i += 1
            a = b

    def _cumulative(self, t: float) -> float:
        total = 0.0
        ats, rates = self._at, self._rates
        for i, at in enumerate(ats):
            if t <= at:
                break
            b = ats[i + 1] if i + 1 < len(ats) else _INF
            total += rates[i] * (min(t, b) - at)
        return total

    def mean_rate(self, start: float, end: float) -> float:
        duration = _check_finite_window(start, end)
        return (self._cumulative(end) - self._cumulative(start)) / duration


@dataclass(frozen=True, slots=True)
class Ramp:
    """Linear ramp from ``from_rate`` at ``start_at`` to ``to_rate`` at
    ``start_at + duration``; ``from_rate`` before, ``to_rate`` after.  Thinning is used on
    the ramp only; the flat parts are plain Poisson, so long flat tails cost nothing extra."""

    name: ClassVar[str] = "ramp"
    from_rate: float
    to_rate: float
    duration: float
    start_at: float = 0.0

    def __post_init__(self) -> None:
        _set(self,
             from_rate=_non_negative("ramp", "from_rate", self.from_rate),
             to_rate=_non_negative("ramp", "to_rate", self.to_rate),
             duration=_positive("ramp", "duration", self.duration),
             start_at=_number("ramp", "start_at", self.start_at))

    def times(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        _check_window(start, end)
        return self._gen(rng, start, end)

    def _gen(self, rng: random.Random, start: float, end: float) -> Iterator[float]:
        r0, r1 = self.from_rate, self.to_rate
        s0 = self.start_at
        s1 = s0 + self.duration
        slope = (r1 - r0) / self.duration

        def rate(t: float) -> float:
            return r0 + slope * (t - s0)

        yield from _poisson_between(rng, start, min(end, s0), r0)
        yield from _thinned(rng, max(start, s0), min(end, s1), max(r0, r1), rate)
        yield from _poisson_between(rng, max(start, s1), end, r1)

    def _cumulative(self, t: float) -> float:
        """Integral of the rate from ``start_at`` to ``t`` (negative before it)."""
        r0, r1, d, s0 = self.from_rate, self.to_rate, self.duration, self.start_at
        x = t - s0
        if x <= 0.0:
            return r0 * x
        if x <= d:
            return r0 * x + (r1 - r0) * x * x / (2.0 * d)
        return (r0 + r1) * d / 2.0 + r1 * (x - d)

    def mean_rate(self, start: float, end: float) -> float:
        duration = _check_finite_window(start, end)
        return (self._cumulative(end) - self._cumulative(start)) / duration


@dataclass(frozen=True, slots=True)
class Trace:
    """Replay recorded arrivals: ``timestamps`` (a list) or ``path`` (a CSV file whose
    header has ``column``), in seconds relative to the run start.

    Arrival ``i`` is replayed at ``start + offset + timestamps[i]`` (``start`` is the
    window's start, taken as the run start); replayed times outside ``[start, end)`` are
    dropped, so a negative ``offset`` skips the head of the trace.  Timestamps must be
    finite, non-negative and sorted (repeats allowed: real traces have them).  The file is
    read and checked once, at construction, so a bad trace fails before the run starts.
    ``rng`` is not used.
    """

    name: ClassVar[str] = "trace"
    timestamps: Optional[Sequence[float]] = None
    path: Optional[Union[str, os.PathLike]] = None
    column: str = "time"
    offset: float = 0.0
    _times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.timestamps is None) == (self.path is None):
            raise ValueError("trace: give exactly one of timestamps (a list) or path (a CSV file)")
        _set(self, offset=_number("trace", "offset", self.offset))
        if self.timestamps is not None:
            ts = self.timestamps
            if isinstance(ts, (str, bytes)) or not isinstance(ts, Sequence):
                raise ValueError(f"trace: timestamps must be a list of numbers, got {ts!r}")
            values: list[float] = []
            for i, v in enumerate(ts):
                values.append(self._check(v, values[-1] if values else None, f"timestamps[{i}]"))
            _set(self, timestamps=tuple(values), _times=tuple(values))
        else:
            _set(self, _times=self._load(os.fspath(self.path)))

    @staticmethod
    def _check(value: Any, prev: Optional[float], where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"trace: {where}: {value!r} is not a number")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"trace: {where}: {value!r} is not finite")
        if v < 0.0:
            raise ValueError(f"trace: {where}: {value!r} is negative")
        if prev is not None and v < prev:
            raise ValueError(f"trace: {where}: {value!r} is before the previous timestamp "
                             f"{prev!r} (the trace must be sorted)")
        return v

    def _load(self, path: str) -> tuple[float, ...]:
        if not isinstance(self.column, str) or not self.column:
            raise ValueError(f"trace: column must be a non-empty string, got {self.column!r}")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"trace: {path}: empty file (expected a header with "
                                 f"{self.column!r})")
            names = [h.strip() for h in header]
            if self.column not in names:
                close = difflib.get_close_matches(self.column, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"trace: {path}:{reader.line_num}: no column {self.column!r} "
                                 f"in header {names}{hint}")
            idx = names.index(self.column)
            values: list[float] = []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                where = f"{path}:{reader.line_num}: column {self.column!r}"
                if idx >= len(row):
                    raise ValueError(f"trace: {where}: missing value")
                text = row[idx].strip()
                try:
                    number = float(text)
                except ValueError:
                    raise ValueError(f"trace: {where}: {text!r} is not a number") from None
                values.append(self._check(number, values[-1] if values else None, where))
        return tuple(values)

    def __len__(self) -> int:
        return len(self._times)

    def times(self, rng: Optional[random.Random], start: float, end: float) -> Iterator[float]:
        _check_window(start, end)
        return self._gen(start, end)

    def _gen(self, start: float, end: float) -> Iterator[float]:
        ts = self._times
        base = start + self.offset
        i = bisect_left(ts, -self.offset)  # skip the head a negative offset moves before start
        for i in range(max(0, i - 1), len(ts)):
            t = base + ts[i]
            if t < start:  # float rounding near the cut
                continue
            if t >= end:
                return
            yield t

    def mean_rate(self, start: float, end: float) -> float:
        duration = _check_finite_window(start, end)
        return sum(1 for _ in self._gen(start, end)) / duration


# --------------------------------------------------------------------------- registry

ARRIVALS: dict[str, tuple[type, str]] = {}


def register_arrival(name: str, cls: type, description: str, *, replace: bool = False) -> None:
    """Make an arrival kind usable as ``{"kind": name, **params}`` in scenarios.  ``cls`` is
    called with the params, and its instances must satisfy :class:`ArrivalProcess`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an arrival kind name must be a non-empty string, got {name!r}")
    if not callable(cls):
        raise ValueError(f"arrival kind {name!r}: cls must be a class, got {cls!r}")
    if name in ARRIVALS and not replace:
        raise ValueError(f"an arrival kind named {name!r} is already registered "
                         "(pass replace=True to override it)")
    ARRIVALS[name] = (cls, description)


def make_arrival(spec: Union[ArrivalProcess, Mapping[str, Any]]) -> ArrivalProcess:
    """An arrival process from an instance (returned as is) or ``{"kind": ..., **params}``."""
    if isinstance(spec, Mapping):
        params = dict(spec)
        known = ", ".join(ARRIVALS)
        kind = params.pop("kind", None)
        if kind is None:
            raise ValueError(f"an arrival spec needs a 'kind' (one of: {known}), got {spec!r}")
        entry = ARRIVALS.get(kind) if isinstance(kind, str) else None
        if entry is None:
            close = difflib.get_close_matches(str(kind), list(ARRIVALS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown arrival kind {kind!r}{hint} Known: {known}")
        cls = entry[0]
        try:
            sig = inspect.signature(cls)
        except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
            sig = None
        if sig is not None:
            try:
                sig.bind(**params)
            except TypeError as e:
                expected = ", ".join(p for p in sig.parameters if not p.startswith("_"))
                raise ValueError(f"arrival kind {kind!r}: {e} (parameters: {expected})") from None
        return cls(**params)
    if isinstance(spec, ArrivalProcess):
        return spec
    raise ValueError(f"an arrival spec must be an arrival process or a mapping with a 'kind', "
                     f"got {spec!r} ({type(spec).__name__})")


for _cls, _desc in (
    (Poisson, "Poisson arrivals at a fixed rate"),
    (Constant, "evenly spaced arrivals, the first one interval after the start"),
    (OnOff, "alternating on/off periods, Poisson within each"),
    (Diurnal, "sinusoidal daily cycle (non-homogeneous Poisson, thinning)"),
    (Step, "piecewise-constant Poisson rate from (at_time, rate) steps"),
    (Ramp, "linear rate ramp between two rates (thinning)"),
    (Trace, "replay of recorded timestamps (list or CSV file)"),
):
    register_arrival(_cls.name, _cls, _desc)
del _cls, _desc


# --------------------------------------------------------------------------- mixes

T = TypeVar("T")

_SUM_TOLERANCE = 1e-9


class Mix(Generic[T]):
    """A categorical distribution over values: ``Mix({"a": 0.7, "b": 0.3})``.

    Probabilities must sum to 1 (within 1e-9) so a typo in a scenario is an error rather
    than a silent renormalisation; use :meth:`normalized` for raw weights.  ``Mix(value)``
    with a non-mapping is the degenerate mix that always yields ``value`` (use
    :meth:`single` when the value is itself a mapping).

    ``sample`` costs one ``rng.random()`` and one bisect over precomputed cumulative
    probabilities.  A mix with a single possible value (one value of positive probability)
    returns it without drawing, so it leaves the stream untouched.
    """

    __slots__ = ("_values", "_probs", "_cum", "_only")

    _values: tuple[T, ...]
    _probs: tuple[float, ...]
    _cum: list[float]
    _only: tuple[T, ...]  # (value,) when exactly one value is possible, else ()

    def __init__(self, weights: Union[Mapping[T, float], T]) -> None:
        if not isinstance(weights, Mapping):
            self._init((weights,), (1.0,))
            return
        if not weights:
            raise ValueError("a Mix needs at least one value")
        values = tuple(weights)
        probs = tuple(_mix_weight(v, weights[v]) for v in values)
        total = math.fsum(probs)
        if abs(total - 1.0) > _SUM_TOLERANCE:
            raise ValueError(f"Mix probabilities must sum to 1, got {total!r} for "
                             f"{dict(zip(values, probs))!r} (Mix.normalized(...) rescales "
                             "weights)")
        self._init(values, probs)

    @classmethod
    def single(cls, value: T) -> "Mix[T]":
        """The mix that always yields ``value`` (even if ``value`` is a mapping)."""
        mix = cls.__new__(cls)
        mix._init((value,), (1.0,))
        return mix

    @classmethod
    def normalized(cls, weights: Mapping[T, float]) -> "Mix[T]":
        """A mix proportional to non-negative ``weights`` (at least one positive)."""
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"Mix.normalized needs a non-empty mapping of weights, "
                             f"got {weights!r}")
        values = tuple(weights)
        raw = [_mix_weight(v, weights[v]) for v in values]
        total = math.fsum(raw)
        if total <= 0.0:
            raise ValueError(f"Mix.normalized needs at least one positive weight, got "
                             f"{dict(weights)!r}")
        mix = cls.__new__(cls)
        mix._init(values, tuple(w / total for w in raw))
        return mix

    def _init(self, values: tuple, probs: tuple[float, ...]) -> None:
        total = math.fsum(probs)
        cum: list[float] = []
        acc = 0.0
        for p in probs:
            acc += p
            cum.append(acc / total)
        # bisect_right(cum, u) with u in [0, 1) must land on a value of positive probability:
        # pin the tail (from the last positive value on) to exactly 1.0.
        last = max(i for i, p in enumerate(probs) if p > 0.0)
        for i in range(last, len(cum)):
            cum[i] = 1.0
        self._values = values
        self._probs = probs
        self._cum = cum
        possible = [v for v, p in zip(values, probs) if p > 0.0]
        self._only = (possible[0],) if len(possible) == 1 else ()

    def sample(self, rng: random.Random) -> T:
        """One value, drawn with the mix's probabilities."""
        if self._only:
            return self._only[0]
        return self._values[bisect_right(self._cum, rng.random())]

    @property
    def values(self) -> tuple[T, ...]:
        return self._values

    @property
    def probabilities(self) -> tuple[float, ...]:
        """Probabilities, parallel to :attr:`values`."""
        return self._probs

    def items(self) -> list[tuple[T, float]]:
        return list(zip(self._values, self._probs))

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mix):
            return NotImplemented
        return self.items() == other.items()

    def __hash__(self) -> int:
        return hash(tuple(self.items()))

    def __repr__(self) -> str:
        return f"Mix({dict(self.items())!r})"


def _mix_weight(value: Any, weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(f"Mix weight for {value!r} must be a number, got {weight!r}")
    w = float(weight)
    if not math.isfinite(w) or w < 0.0:
        raise ValueError(f"Mix weight for {value!r} must be finite and >= 0, got {weight!r}")
    return w


def make_mix(spec: Any) -> Mix:
    """A :class:`Mix` from a Mix (returned as is), a mapping ``{value: probability}``
    (must sum to 1) or a single value.  Lists and sets are refused: they are ambiguous
    (uniform? a list-valued attribute?), so write the mapping."""
    if isinstance(spec, Mix):
        return spec
    if isinstance(spec, Mapping):
        return Mix(spec)
    if isinstance(spec, (list, set, frozenset)):
        raise ValueError(f"a mix spec must be a value or a mapping {{value: probability}}, "
                         f"got {spec!r}")
    return Mix.single(spec)
