"""Tests for fedsim.world.arrivals: arrival processes (counts against theory, thinning,
windows, replay, validation, registry) and categorical mixes.

Statistical checks use fixed seeds and 4-sigma tolerances from the Poisson (or binomial)
standard deviation, so they are deterministic here yet would catch a wrong rate, a wrong
phase or a wrong thinning acceptance.  Expected counts are computed independently of the
module (numerical quadrature of the rate function written out in the test).
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from fedsim.world.arrivals import (
    ARRIVALS,
    ArrivalProcess,
    Constant,
    Diurnal,
    Mix,
    OnOff,
    Poisson,
    Ramp,
    Step,
    Trace,
    make_arrival,
    make_mix,
    register_arrival,
)


def within_poisson(n: int, expected: float, sigmas: float = 4.0) -> bool:
    return abs(n - expected) < sigmas * math.sqrt(expected)


def within_binomial(k: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(k - n * p) < sigmas * math.sqrt(n * p * (1 - p))


def collect(process, seeds, start, end) -> list[list[float]]:
    return [list(process.times(random.Random(s), start, end)) for s in seeds]


# --------------------------------------------------------------------------- common properties

STOCHASTIC = [
    Poisson(20.0),
    OnOff(on_rate=40.0, on=3.0, off=4.0, off_rate=2.0),
    Diurnal(mean_rate=15.0, amplitude=0.8, period=30.0, phase=1.0),
    Step([(0.0, 5.0), (40.0, 30.0), (70.0, 0.0), (90.0, 12.0)]),
    Ramp(from_rate=2.0, to_rate=40.0, duration=50.0, start_at=30.0),
]
DETERMINISTIC = [
    Constant(7.0),
    Trace(timestamps=[0.0, 0.25, 0.25, 3.0, 50.0, 99.0, 150.0], offset=0.5),
]
ALL = STOCHASTIC + DETERMINISTIC


@pytest.mark.parametrize("process", ALL, ids=lambda p: p.name)
def test_times_in_window_and_ordered(process):
    start, end = 17.3, 117.3
    for times in collect(process, range(3), start, end):
        assert times, "every process here has arrivals in this window"
        assert all(start <= t < end for t in times)
        if isinstance(process, Trace):
            assert all(a <= b for a, b in zip(times, times[1:]))
        else:
            assert all(a < b for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("process", ALL, ids=lambda p: p.name)
def test_satisfies_protocol(process):
    assert isinstance(process, ArrivalProcess)
    assert ARRIVALS[process.name][0] is type(process)


@pytest.mark.parametrize("process", STOCHASTIC, ids=lambda p: p.name)
def test_reproducible_with_same_seed_and_varies_with_seed(process):
    a, b, c = collect(process, [42, 42, 43], 0.0, 200.0)
    assert a == b
    assert a != c


@pytest.mark.parametrize("process", ALL, ids=lambda p: p.name)
def test_bad_window_rejected_eagerly(process):
    rng = random.Random(0)
    with pytest.raises(ValueError, match="window"):
        process.times(rng, 10.0, 5.0)  # no next(): the check must not wait for iteration
    with pytest.raises(ValueError, match="window"):
        process.times(rng, math.nan, 5.0)
    with pytest.raises(ValueError, match="mean_rate"):
        process.mean_rate(5.0, 5.0)
    with pytest.raises(ValueError, match="mean_rate"):
        process.mean_rate(0.0, math.inf)


@pytest.mark.parametrize("process", ALL, ids=lambda p: p.name)
def test_empty_window_has_no_arrivals(process):
    assert list(process.times(random.Random(1), 33.0, 33.0)) == []


def test_unbounded_stream():
    times = list(itertools.islice(Poisson(5.0).times(random.Random(3), 0.0, math.inf), 500))
    assert len(times) == 500
    assert all(a < b for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("process", STOCHASTIC, ids=lambda p: p.name)
def test_counts_match_mean_rate(process):
    start, end = 5.0, 205.0
    n = sum(len(t) for t in collect(process, range(10), start, end))
    expected = 10 * process.mean_rate(start, end) * (end - start)
    assert within_poisson(n, expected)


# --------------------------------------------------------------------------- poisson


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_poisson_count(seed):
    rate, duration = 50.0, 1000.0
    n = len(list(Poisson(rate).times(random.Random(seed), 100.0, 100.0 + duration)))
    assert within_poisson(n, rate * duration)


def test_poisson_gaps_are_exponential():
    rate = 10.0
    times = list(Poisson(rate).times(random.Random(7), 0.0, 5000.0))
    gaps = [b - a for a, b in zip(times, times[1:])]
    # P(gap > 1/rate) = e^-1 and P(gap > 3/rate) = e^-3 for exponential gaps
    assert within_binomial(sum(g > 1 / rate for g in gaps), len(gaps), math.exp(-1))
    assert within_binomial(sum(g > 3 / rate for g in gaps), len(gaps), math.exp(-3))


def test_poisson_mean_rate():
    assert Poisson(3.5).mean_rate(0.0, 10.0) == 3.5


# --------------------------------------------------------------------------- constant


def test_constant_spacing_exact():
    times = list(Constant(4.0).times(random.Random(0), 10.0, 13.0))
    # first arrival one interval after start; end excluded (10 + 12/4 == 13)
    assert times == [10.0 + k * 0.25 for k in range(1, 12)]


def test_constant_non_binary_rate():
    rate, start, end = 3.0, 2.0, 12.0
    times = list(Constant(rate).times(random.Random(0), start, end))
    assert len(times) == math.ceil((end - start) * rate) - 1
    assert times[0] == pytest.approx(start + 1 / rate, abs=1e-12)
    assert all(b - a == pytest.approx(1 / rate, abs=1e-9) for a, b in zip(times, times[1:]))
    assert Constant(rate).mean_rate(start, end) == pytest.approx(len(times) / (end - start))


def test_constant_ignores_rng():
    a = list(Constant(9.0).times(random.Random(1), 0.0, 5.0))
    b = list(Constant(9.0).times(random.Random(2), 0.0, 5.0))
    assert a == b


# --------------------------------------------------------------------------- onoff


def test_onoff_silent_off_periods_and_on_counts():
    on_rate, on, off, cycles = 50.0, 2.0, 3.0, 200
    times = list(OnOff(on_rate, on, off).times(random.Random(11), 0.0, cycles * (on + off)))
    assert all(t % (on + off) < on for t in times)
    assert within_poisson(len(times), on_rate * on * cycles)


def test_onoff_off_rate_counts():
    on_rate, on, off, off_rate, cycles = 50.0, 2.0, 3.0, 5.0, 200
    times = list(OnOff(on_rate, on, off, off_rate).times(random.Random(12), 0.0,
                                                         cycles * (on + off)))
    n_on = sum(t % (on + off) < on for t in times)
    n_off = len(times) - n_on
    assert within_poisson(n_on, on_rate * on * cycles)
    assert within_poisson(n_off, off_rate * off * cycles)


def test_onoff_cycles_anchored_at_zero():
    # a window starting inside an off period sees silence until the next on period
    times = list(OnOff(100.0, 1.0, 4.0).times(random.Random(5), 3.5, 50.0))
    assert times[0] >= 5.0
    assert all(t % 5.0 < 1.0 for t in times)


def test_onoff_mean_rate():
    p = OnOff(on_rate=10.0, on=2.0, off=3.0, off_rate=1.0)

    def rate(t):
        return 10.0 if t % 5.0 < 2.0 else 1.0

    for a, b in [(0.0, 5.0), (1.0, 13.5), (-7.0, 4.0)]:
        expected = quad(rate, a, b, points=[x for x in range(-10, 20) if a < x < b],
                        limit=200)[0] / (b - a)
        assert p.mean_rate(a, b) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- diurnal


def diurnal_rate(mean, amp, period, phase):
    return lambda t: mean * (1 + amp * math.sin(2 * math.pi * t / period + phase))


def test_diurnal_half_periods_match_rate_integral():
    mean, amp, period, cycles = 20.0, 0.8, 10.0, 200
    p = Diurnal(mean, amp, period=period)
    times = list(p.times(random.Random(21), 0.0, cycles * period))
    first = sum(t % period < period / 2 for t in times)
    second = len(times) - first
    rate = diurnal_rate(mean, amp, period, 0.0)
    assert within_poisson(first, cycles * quad(rate, 0, period / 2)[0])
    assert within_poisson(second, cycles * quad(rate, period / 2, period)[0])
    # the halves really differ (peak in the first half for phase 0)
    assert first > 2 * second


def test_diurnal_phase_and_offset_window():
    mean, amp, period, phase, cycles = 20.0, 0.9, 10.0, 2.0, 200
    start = 3.0  # window not aligned to the period: the rate uses absolute time
    p = Diurnal(mean, amp, period=period, phase=phase)
    times = list(p.times(random.Random(22), start, start + cycles * period))
    rate = diurnal_rate(mean, amp, period, phase)
    bins = 5
    counts = [0] * bins
    for t in times:
        counts[int((t % period) / period * bins)] += 1
    for i, n in enumerate(counts):
        lo, hi = i * period / bins, (i + 1) * period / bins
        assert within_poisson(n, cycles * quad(rate, lo, hi)[0]), (i, counts)


def test_diurnal_mean_rate():
    mean, amp, period, phase = 12.0, 0.6, 100.0, 0.4
    p = Diurnal(mean, amp, period=period, phase=phase)
    assert p.mean_rate(0.0, period) == pytest.approx(mean)
    assert p.mean_rate(37.0, 37.0 + 3 * period) == pytest.approx(mean)
    rate = diurnal_rate(mean, amp, period, phase)
    for a, b in [(0.0, 25.0), (10.0, 61.0), (-30.0, 170.0)]:
        assert p.mean_rate(a, b) == pytest.approx(quad(rate, a, b)[0] / (b - a), rel=1e-9)


def test_diurnal_amplitude_zero_is_homogeneous():
    times = list(Diurnal(30.0, 0.0, period=10.0).times(random.Random(23), 0.0, 1000.0))
    first = sum(t % 10.0 < 5.0 for t in times)
    assert within_poisson(first, 30.0 * 500.0)
    assert within_poisson(len(times) - first, 30.0 * 500.0)


def test_diurnal_default_period_is_a_day():
    p = Diurnal(mean_rate=1.0, amplitude=0.5)
    assert p.period == 86400.0
    assert p.mean == 1.0
    assert "mean_rate=1.0" in repr(p)


# --------------------------------------------------------------------------- step


def test_step_segments():
    p = Step([(10.0, 5.0), (20.0, 50.0), (30.0, 0.0), (40.0, 20.0)])
    runs = collect(p, range(20), 0.0, 50.0)
    times = [t for run in runs for t in run]
    assert all(t >= 10.0 for t in times), "rate is 0 before the first step"
    assert not any(30.0 <= t < 40.0 for t in times), "rate 0 step"
    assert within_poisson(sum(10 <= t < 20 for t in times), 20 * 5.0 * 10)
    assert within_poisson(sum(20 <= t < 30 for t in times), 20 * 50.0 * 10)
    assert within_poisson(sum(40 <= t < 50 for t in times), 20 * 20.0 * 10)


def test_step_window_starting_mid_segment_and_last_rate_holds():
    p = Step([(0.0, 2.0), (10.0, 40.0)])
    times = [t for run in collect(p, range(10), 25.0, 75.0) for t in run]
    assert min(times) >= 25.0
    assert within_poisson(len(times), 10 * 40.0 * 50.0)


def test_step_mean_rate():
    p = Step([(10.0, 5.0), (20.0, 50.0), (30.0, 0.0)])
    assert p.mean_rate(0.0, 40.0) == pytest.approx((5.0 * 10 + 50.0 * 10) / 40.0)
    assert p.mean_rate(15.0, 25.0) == pytest.approx((5.0 * 5 + 50.0 * 5) / 10.0)
    assert p.mean_rate(0.0, 10.0) == 0.0


def test_step_accepts_json_lists():
    assert Step([[0, 1], [5, 2]]) == Step([(0.0, 1.0), (5.0, 2.0)])


# --------------------------------------------------------------------------- ramp


def ramp_rate(r0, r1, duration, s0):
    def rate(t):
        if t < s0:
            return r0
        if t >= s0 + duration:
            return r1
        return r0 + (r1 - r0) * (t - s0) / duration
    return rate


@pytest.mark.parametrize("r0, r1, duration, s0, end, edges", [
    (10.0, 100.0, 100.0, 50.0, 300.0, [0, 50, 100, 150, 300]),
    (80.0, 5.0, 40.0, 10.0, 100.0, [0, 10, 20, 30, 40, 50, 100]),
    (0.0, 60.0, 30.0, 0.0, 30.0, [0, 10, 20, 30]),
], ids=["up", "down", "from-zero"])
def test_ramp_counts_match_rate_integral(r0, r1, duration, s0, end, edges):
    p = Ramp(r0, r1, duration, start_at=s0)
    seeds = range(3)
    times = [t for run in collect(p, seeds, 0.0, end) for t in run]
    rate = ramp_rate(r0, r1, duration, s0)
    for lo, hi in zip(edges, edges[1:]):
        expected = len(seeds) * quad(rate, lo, hi, points=[s0, s0 + duration])[0]
        n = sum(lo <= t < hi for t in times)
        assert within_poisson(n, expected), (lo, hi, n, expected)


def test_ramp_mean_rate():
    r0, r1, d, s0 = 10.0, 100.0, 100.0, 50.0
    p = Ramp(r0, r1, d, start_at=s0)
    rate = ramp_rate(r0, r1, d, s0)
    for a, b in [(0.0, 300.0), (60.0, 90.0), (0.0, 20.0), (170.0, 200.0), (-10.0, 120.0)]:
        expected = quad(rate, a, b, points=[x for x in (s0, s0 + d) if a < x < b])[0] / (b - a)
        assert p.mean_rate(a, b) == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- trace

TS = [0.0, 0.5, 0.5, 2.0, 7.0]


def test_trace_replay_from_list_with_offset():
    p = Trace(timestamps=TS, offset=1.0)
    assert list(p.times(random.Random(0), 100.0, 107.0)) == [101.0, 101.5, 101.5, 103.0]
    assert p.mean_rate(100.0, 107.0) == pytest.approx(4 / 7.0)


def test_trace_negative_offset_skips_head():
    p = Trace(timestamps=TS, offset=-1.0)
    assert list(p.times(random.Random(0), 100.0, 107.0)) == [101.0, 106.0]


def test_trace_ignores_rng():
    p = Trace(timestamps=TS)
    assert list(p.times(random.Random(1), 0.0, 10.0)) == list(p.times(random.Random(2), 0.0, 10.0))
    assert len(p) == len(TS)


def test_trace_from_csv(tmp_path):
    f = tmp_path / "trace.csv"
    f.write_text("id,time,model\na,0.0,m1\nb,0.5,m2\n\nc,0.5,m1\nd,2.25,m3\n")
    p = Trace(path=f, offset=1.0)
    assert list(p.times(random.Random(0), 100.0, 200.0)) == [101.0, 101.5, 101.5, 103.25]
    assert Trace(path=str(f)) == Trace(path=str(f))


def test_trace_from_csv_custom_column(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("ts , other\n1, x\n4 , y\n")
    p = Trace(path=f, column="ts")
    assert list(p.times(random.Random(0), 10.0, 20.0)) == [11.0, 14.0]


@pytest.mark.parametrize("bad, message", [
    ("oops", "not a number"),
    ("-1", "negative"),
    ("0.1", "sorted"),
    ("inf", "finite"),
])
def test_trace_bad_csv_value_names_file_and_line(tmp_path, bad, message):
    f = tmp_path / "bad.csv"
    # line 1 header, 2-3 rows, 4 blank, 5 the bad value
    f.write_text(f"time\n0.5\n1.0\n\n{bad}\n3.0\n")
    with pytest.raises(ValueError) as e:
        Trace(path=f)
    assert f"{f}:5" in str(e.value)
    assert message in str(e.value)


def test_trace_missing_column(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("times,model\n1,a\n")
    with pytest.raises(ValueError, match="no column 'time'.*did you mean 'times'"):
        Trace(path=f)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"timestamps": [1.0], "path": "x.csv"}, "exactly one"),
    ({"timestamps": [1.0, 0.5]}, r"timestamps\[1\].*sorted"),
    ({"timestamps": [-0.5]}, r"timestamps\[0\].*negative"),
    ({"timestamps": [0.0, "x"]}, r"timestamps\[1\].*not a number"),
    ({"timestamps": [0.0], "offset": math.nan}, "offset"),
])
def test_trace_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trace(**kwargs)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("build, param", [
    (lambda: Poisson(0.0), "rate"),
    (lambda: Poisson(-1.0), "rate"),
    (lambda: Poisson(math.nan), "rate"),
    (lambda: Poisson("5"), "rate"),
    (lambda: Poisson(True), "rate"),
    (lambda: Constant(0.0), "rate"),
    (lambda: OnOff(0.0, 1.0, 1.0), "on_rate"),
    (lambda: OnOff(1.0, 0.0, 1.0), "on must"),
    (lambda: OnOff(1.0, 1.0, -1.0), "off must"),
    (lambda: OnOff(1.0, 1.0, 1.0, off_rate=-1.0), "off_rate"),
    (lambda: Diurnal(0.0, 0.5), "mean_rate"),
    (lambda: Diurnal(1.0, 1.5), "amplitude"),
    (lambda: Diurnal(1.0, -0.1), "amplitude"),
    (lambda: Diurnal(1.0, 0.5, period=0.0), "period"),
    (lambda: Diurnal(1.0, 0.5, phase=math.inf), "phase"),
    (lambda: Step([]), "steps"),
    (lambda: Step([(10.0, 1.0), (5.0, 2.0)]), r"steps\[1\].*sorted"),
    (lambda: Step([(0.0, 1.0), (0.0, 2.0)]), r"steps\[1\].*sorted"),
    (lambda: Step([(0.0, -1.0)]), r"steps\[0\] rate"),
    (lambda: Step([(0.0, 1.0, 2.0)]), r"steps\[0\].*pair"),
    (lambda: Ramp(-1.0, 1.0, 1.0), "from_rate"),
    (lambda: Ramp(1.0, -1.0, 1.0), "to_rate"),
    (lambda: Ramp(1.0, 1.0, 0.0), "duration"),
    (lambda: Ramp(1.0, 1.0, 1.0, start_at=math.nan), "start_at"),
])
def test_validation_names_parameter(build, param):
    with pytest.raises(ValueError, match=param):
        build()


def test_processes_are_frozen_values():
    p = Poisson(2)
    assert p == Poisson(2.0) and hash(p) == hash(Poisson(2.0))
    assert isinstance(p.rate, float)
    with pytest.raises(AttributeError):
        p.rate = 3.0  # type: ignore[misc]


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("spec, direct", [
    ({"kind": "poisson", "rate": 3}, Poisson(3.0)),
    ({"kind": "constant", "rate": 2}, Constant(2.0)),
    ({"kind": "onoff", "on_rate": 5, "on": 1, "off": 2}, OnOff(5.0, 1.0, 2.0)),
    ({"kind": "diurnal", "mean_rate": 4, "amplitude": 0.5, "period": 60},
     Diurnal(4.0, 0.5, period=60.0)),
    ({"kind": "step", "steps": [[0, 1], [10, 2]]}, Step([(0.0, 1.0), (10.0, 2.0)])),
    ({"kind": "ramp", "from_rate": 1, "to_rate": 9, "duration": 5}, Ramp(1.0, 9.0, 5.0)),
    ({"kind": "trace", "timestamps": [0, 1, 2], "offset": 3}, Trace([0.0, 1.0, 2.0], offset=3.0)),
], ids=lambda x: x["kind"] if isinstance(x, dict) else "")
def test_make_arrival_from_dict(spec, direct):
    original = dict(spec)
    built = make_arrival(spec)
    assert built == direct
    assert type(built) is type(direct)
    assert spec == original, "the spec must not be mutated"


def test_registry_lists_builtin_kinds():
    assert {"poisson", "constant", "onoff", "diurnal", "step", "ramp", "trace"} <= set(ARRIVALS)
    for name, (cls, description) in ARRIVALS.items():
        assert cls.name == name
        assert isinstance(description, str) and description


def test_make_arrival_passes_instances_through():
    p = Ramp(1.0, 2.0, 3.0)
    assert make_arrival(p) is p


def test_make_arrival_unknown_kind_suggests():
    with pytest.raises(ValueError) as e:
        make_arrival({"kind": "poison", "rate": 1})
    msg = str(e.value)
    assert "did you mean 'poisson'" in msg
    assert "diurnal" in msg and "trace" in msg


def test_make_arrival_errors():
    with pytest.raises(ValueError, match="kind"):
        make_arrival({"rate": 1})
    with pytest.raises(ValueError, match="rat.*parameters: rate"):
        make_arrival({"kind": "poisson", "rat": 1})
    with pytest.raises(ValueError, match="rate"):
        make_arrival({"kind": "poisson", "rate": -1})
    with pytest.raises(ValueError, match="mapping"):
        make_arrival("poisson")  # type: ignore[arg-type]


def test_register_arrival():
    class Burst:
        name = "test-burst"

        def __init__(self, at: float) -> None:
            self.at = at

        def times(self, rng, start, end):
            return iter([self.at] if start <= self.at < end else [])

        def mean_rate(self, start, end):
            return (start <= self.at < end) / (end - start)

    try:
        register_arrival("test-burst", Burst, "one arrival")
        p = make_arrival({"kind": "test-burst", "at": 2.0})
        assert isinstance(p, Burst) and list(p.times(random.Random(0), 0.0, 5.0)) == [2.0]
        with pytest.raises(ValueError, match="already registered"):
            register_arrival("test-burst", Burst, "again")
        register_arrival("test-burst", Poisson, "replaced", replace=True)
        assert ARRIVALS["test-burst"] == (Poisson, "replaced")
        assert make_arrival({"kind": "test-burst", "rate": 1.0}) == Poisson(1.0)
    finally:
        ARRIVALS.pop("test-burst", None)
    with pytest.raises(ValueError, match="already registered"):
        register_arrival("poisson", Poisson, "dup")


# --------------------------------------------------------------------------- mix


class FixedRng:
    """Returns a given sequence of uniforms: pins down the bisect boundaries."""

    def __init__(self, *us: float) -> None:
        self.us = list(us)

    def random(self) -> float:
        return self.us.pop(0)


def test_mix_frequencies():
    probs = {"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05}
    mix = Mix(probs)
    rng = random.Random(31)
    n = 100_000
    draws = [mix.sample(rng) for _ in range(n)]
    for value, p in probs.items():
        assert within_binomial(draws.count(value), n, p), value


def test_mix_values_and_probabilities_are_parallel():
    mix = Mix({"x": 0.25, "y": 0.75})
    assert mix.values == ("x", "y")
    assert mix.probabilities == (0.25, 0.75)
    assert dict(mix.items()) == {"x": 0.25, "y": 0.75}
    assert len(mix) == 2


def test_mix_bisect_boundaries():
    mix = Mix({"a": 0.5, "b": 0.5})
    assert mix.sample(FixedRng(0.0)) == "a"
    assert mix.sample(FixedRng(0.49999)) == "a"
    assert mix.sample(FixedRng(0.5)) == "b"
    assert mix.sample(FixedRng(math.nextafter(1.0, 0.0))) == "b"


def test_mix_zero_weight_values_never_sampled():
    mix = Mix({"z0": 0.0, "a": 0.3, "z1": 0.0, "b": 0.7, "z2": 0.0})
    for u in (0.0, 0.3, math.nextafter(0.3, 0.0), math.nextafter(1.0, 0.0)):
        assert mix.sample(FixedRng(u)) in ("a", "b"), u
    rng = random.Random(5)
    assert {mix.sample(rng) for _ in range(5000)} == {"a", "b"}


def test_mix_largest_uniform_with_rounded_cumulative_sum():
    probs = {"a": 0.35, "b": 0.05, "c": 0.25, "d": 0.35}
    running = 0.0
    for p in probs.values():
        running += p
    assert running < 1.0  # the float running sum falls short of 1: the case to cover
    top = math.nextafter(1.0, 0.0)
    assert Mix(probs).sample(FixedRng(top)) == "d"
    assert Mix({**probs, "z": 0.0}).sample(FixedRng(top)) == "d"


def test_mix_sum_must_be_one():
    with pytest.raises(ValueError) as e:
        Mix({"a": 0.5, "b": 0.4})
    assert "0.9" in str(e.value) and "'a'" in str(e.value) and "'b'" in str(e.value)
    with pytest.raises(ValueError, match="sum to 1"):
        Mix({"a": 0.5, "b": 0.5 + 1e-8})
    Mix({"a": 0.5, "b": 0.5 + 1e-10})  # within 1e-9
    Mix({"a": 0.1, "b": 0.2, "c": 0.7})  # float rounding is fine


@pytest.mark.parametrize("weights, message", [
    ({"a": -0.5, "b": 1.5}, "'a'.*>= 0"),
    ({"a": "1"}, "'a'.*number"),
    ({"a": math.nan}, "'a'"),
    ({}, "at least one"),
])
def test_mix_invalid_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        Mix(weights)


def test_mix_normalized():
    mix = Mix.normalized({"x": 2, "y": 6, "z": 0})
    assert mix.values == ("x", "y", "z")
    assert mix.probabilities == pytest.approx((0.25, 0.75, 0.0))
    rng = random.Random(9)
    n = 20_000
    draws = [mix.sample(rng) for _ in range(n)]
    assert "z" not in draws
    assert within_binomial(draws.count("x"), n, 0.25)
    with pytest.raises(ValueError, match="'y'.*>= 0"):
        Mix.normalized({"x": 1, "y": -1})
    with pytest.raises(ValueError, match="positive"):
        Mix.normalized({"x": 0, "y": 0})


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 50), st.floats(0.0, 1e6), min_size=1, max_size=8),
       st.integers(0, 2**32))
def test_mix_normalized_property(weights, seed):
    if not any(w > 0 for w in weights.values()):
        with pytest.raises(ValueError):
            Mix.normalized(weights)
        return
    mix = Mix.normalized(weights)
    assert math.fsum(mix.probabilities) == pytest.approx(1.0, abs=1e-12)
    Mix(dict(mix.items()))  # a normalized mix passes the strict check
    rng = random.Random(seed)
    for _ in range(50):
        assert weights[mix.sample(rng)] > 0


def test_mix_single_value_does_not_draw():
    rng = random.Random(4)
    state = rng.getstate()
    mix = Mix("generate")
    assert all(mix.sample(rng) == "generate" for _ in range(10))
    assert Mix({"a": 1.0, "b": 0.0}).sample(rng) == "a"
    assert rng.getstate() == state
    assert Mix.single({"a": 1}).sample(rng) == {"a": 1}


def test_mix_reproducible():
    mix = Mix({1: 0.2, 2: 0.3, 3: 0.5})
    a = [mix.sample(random.Random(8)) for _ in range(3)]
    r1, r2 = random.Random(8), random.Random(8)
    assert [mix.sample(r1) for _ in range(200)] == [mix.sample(r2) for _ in range(200)]
    assert len(set(a)) == 1


def test_make_mix():
    m = Mix({"a": 0.5, "b": 0.5})
    assert make_mix(m) is m
    assert make_mix({"a": 0.5, "b": 0.5}) == m
    assert make_mix("internal").sample(random.Random(0)) == "internal"
    assert make_mix(50).values == (50,)
    with pytest.raises(ValueError, match="sum to 1"):
        make_mix({"a": 0.5})
    with pytest.raises(ValueError, match="mapping"):
        make_mix(["a", "b"])
