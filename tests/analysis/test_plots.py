"""fedsim.plots: the figure objects carry what they claim - one line per variant with its label,
a log-scaled percentile axis with the right ticks, a confidence band exactly when seeds repeat,
units on the axes, fault windows shaded on every timeline panel with the right extents,
heatmaps of nodes x time bins - checked on small synthetic tables with known contents and on
one real run; and :func:`fedsim.plots.save` writes PNG and SVG files."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from fedsim import analysis as A
from fedsim import plots
from fedsim.world import Scenario, run

TICKS = ["50%", "90%", "99%", "99.9%", "99.99%"]


def cat(df: pd.DataFrame) -> pd.DataFrame:
    """String columns as categoricals, like the world's recorder produces them."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = pd.Categorical(out[c])
    return out


def lines(ax) -> list:
    """Data lines with a legend label (helper lines such as the zero line have none)."""
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def bands(ax) -> list:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def fault_spans(ax) -> list[tuple[float, float]]:
    out = []
    for p in ax.patches:
        if p.get_gid() == plots.FAULT_GID:
            x0, x1 = p.get_x(), p.get_x() + p.get_width()
            out.append((round(x0, 9), round(x1, 9)))
    return sorted(out)


# =========================================================================== synthetic tables

RNG = np.random.default_rng(7)
N = 12_000  # per (variant, seed): enough for the 99.99th percentile (1 - 1/n > 0.9999)


def requests(variants=("A", "B"), seeds=(1, 2, 3), n=N) -> pd.DataFrame:
    """Lognormal latencies; B is 1.5 times slower; a failed and an early request per group
    that must be ignored (status, warm-up)."""
    parts = []
    for i, v in enumerate(variants):
        for s in seeds:
            lat = RNG.lognormal(math.log(0.1), 0.6, n) * (1.0 + 0.5 * i) * (1 + 0.02 * s)
            df = pd.DataFrame({"variant": v, "seed": s, "arrival": np.linspace(10, 100, n),
                               "status": "success", "latency": lat})
            junk = pd.DataFrame({"variant": [v, v], "seed": [s, s], "arrival": [50.0, 1.0],
                                 "status": ["failed", "success"], "latency": [1e6, 1e6]})
            parts += [df, junk]
    return cat(pd.concat(parts, ignore_index=True))


@pytest.fixture(scope="module")
def reqs() -> pd.DataFrame:
    return requests()


def test_percentile_plot_lines_axis_ticks_and_bands(reqs):
    fig = plots.latency_percentile_plot(reqs, variant_col="variant", warmup=5.0)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [ln.get_label() for ln in lines(ax)] == ["A", "B"]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == TICKS
    # ticks sit at 1 / (1 - p)
    assert np.allclose(ax.get_xticks(), [2, 10, 100, 1000, 10000])
    assert ax.get_xlim() == pytest.approx((1.0, 10000.0))
    assert "(ms)" in ax.get_ylabel() and "percentile" in ax.get_xlabel()
    assert ax.get_title() and ax.get_legend() is not None
    # one confidence band per variant (3 seeds)
    assert len(bands(ax)) == 2
    # the line is the mean over seeds of each seed's percentile (numpy "higher"), in ms;
    # failed requests and requests before the warm-up are left out
    line_a = lines(ax)[0]
    x, y = line_a.get_xdata(), line_a.get_ydata()
    assert x[-1] == pytest.approx(10000.0)  # reaches 99.99%
    ok = reqs[(reqs["status"] == "success") & (reqs["arrival"] >= 5.0) & (reqs["variant"] == "A")]
    for p in (50.0, 99.0, 99.99):
        i = int(np.argmin(abs(x - 1.0 / (1.0 - p / 100.0))))
        pi = 100.0 * (1.0 - 1.0 / x[i])
        expected = np.mean([np.percentile(g["latency"], pi, method="higher")
                            for _, g in ok.groupby("seed", observed=True)]) * 1e3
        assert y[i] == pytest.approx(expected)
    assert y.max() < 1e5  # the 1e6 s junk rows are not there
    # the band encloses the line
    verts = bands(ax)[0].get_paths()[0].vertices
    assert verts[:, 1].min() <= y.min() and verts[:, 1].max() >= y.max()


def test_percentile_plot_without_replications_has_no_band(reqs):
    one = reqs[reqs["seed"] == 1]
    fig = plots.latency_percentile_plot(one, variant_col="variant")
    ax = fig.axes[0]
    assert [ln.get_label() for ln in lines(ax)] == ["A", "B"]
    assert bands(ax) == []
    # no variant column: one line; a mapping: one line per key; an array: one line
    assert len(lines(plots.latency_percentile_plot(one).axes[0])) == 1
    fig = plots.latency_percentile_plot({"x": [0.1, 0.2, 0.3], "y": np.arange(1, 200) / 100})
    assert [ln.get_label() for ln in lines(fig.axes[0])] == ["x", "y"]
    assert len(lines(plots.latency_percentile_plot(np.ones(10)).axes[0])) == 1
    # a short sample stops where it resolves: 3 values reach p66.7 at most
    x = lines(fig.axes[0])[0].get_xdata()
    assert x.max() <= 3.0 + 1e-9
    # lower max_percentile: fewer ticks
    ax = plots.latency_percentile_plot(one, max_percentile=99.9).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == TICKS[:4]


def test_percentile_plot_ttft_and_empty():
    ax = plots.latency_percentile_plot(pd.DataFrame({"ttft": [0.01, 0.02]}), column="ttft").axes[0]
    assert "time to first token (ms)" == ax.get_ylabel()
    empty = plots.latency_percentile_plot(pd.DataFrame({"latency": [], "status": []}))
    assert lines(empty.axes[0]) == [] and "no successful" in empty.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="no column"):
        plots.latency_percentile_plot(pd.DataFrame({"x": [1.0]}))


def test_cdf_and_ccdf(reqs):
    one = reqs[reqs["seed"] == 1]
    ax = plots.cdf_plot(one, variant_col="variant").axes[0]
    assert [ln.get_label() for ln in lines(ax)] == ["A", "B"]
    assert "(ms)" in ax.get_xlabel() and ax.get_ylabel()
    y = lines(ax)[0].get_ydata()
    assert y[-1] == pytest.approx(1.0) and np.all(np.diff(y) >= 0)
    # thinned to at most max_points but keeps both ends
    assert len(y) <= 4000
    a = one[(one["variant"] == "A") & (one["status"] == "success")]["latency"]
    assert lines(ax)[0].get_xdata()[-1] == pytest.approx(a.max() * 1e3)
    ax = plots.ccdf_plot(one, variant_col="variant").axes[0]
    assert ax.get_yscale() == "log" and [ln.get_label() for ln in lines(ax)] == ["A", "B"]
    y = lines(ax)[0].get_ydata()
    assert 0 < y.min() and y.max() <= 1.0 and np.all(np.diff(y) <= 0)
    assert "(ms)" in ax.get_xlabel()
    # exact on a small sample: P(X > x_i) = (n - i) / n
    ax = plots.ccdf_plot([0.001, 0.002, 0.003, 0.004]).axes[0]
    assert list(lines(ax)[0].get_xdata()) == pytest.approx([1, 2, 3])
    assert list(lines(ax)[0].get_ydata()) == pytest.approx([0.75, 0.5, 0.25])


# =========================================================================== sweeps

def sweep_table(seeds=(1, 2, 3)) -> pd.DataFrame:
    rows = []
    for strategy, k in (("random", 1.0), ("least_latency", 2.0)):
        for rate in ("10/s", "20/s", "40/s"):
            r = float(rate.split("/")[0])
            for s in seeds:
                rows.append({"point": f"{strategy},{rate}", "router.strategy": strategy,
                             "workloads[0].arrival.rate": rate, "seed": s,
                             "latency_p50": 0.001 * r * k + 0.0001 * s,
                             "latency_p99": 0.004 * r * k + 0.0003 * s, "error": ""})
    rows.append({"point": "random,10/s", "router.strategy": "random",
                 "workloads[0].arrival.rate": "10/s", "seed": 9, "latency_p50": 99.0,
                 "latency_p99": 99.0, "error": "OverflowError: boom"})
    return pd.DataFrame(rows)


def test_percentile_vs_load_with_ci_bars():
    t = sweep_table()
    fig = plots.percentile_vs_load_plot(t, "workloads[0].arrival.rate",
                                        variant_col="router.strategy")
    ax = fig.axes[0]
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    labels = [c.get_label() for c in containers]
    assert labels == ["random p50", "random p99", "least_latency p50", "least_latency p99"]
    assert ax.get_legend_handles_labels()[1] == labels
    line = containers[1].lines[0]  # random p99
    assert list(line.get_xdata()) == [10.0, 20.0, 40.0]  # "20/s" read as 20 requests/s
    ok = t[(t["error"] == "") & (t["router.strategy"] == "random")]
    expected = ok.groupby("workloads[0].arrival.rate", sort=False)["latency_p99"].mean() * 1e3
    assert list(line.get_ydata()) == pytest.approx(list(expected))  # the failed row is out
    assert ax.get_ylabel() == "latency (ms)"
    assert "requests/s" in ax.get_xlabel()
    assert all(c.has_yerr for c in containers)
    # the bars are the t-interval of analysis.replication_summary
    s = A.replication_summary(ok.assign(x=[float(r[:2]) for r in ok["workloads[0].arrival.rate"]]),
                              "latency_p99", by="x")
    seg = containers[1].lines[2][0].get_segments()
    assert [tuple(np.round(v[:, 1], 9)) for v in seg] == [
        (round(lo * 1e3, 9), round(hi * 1e3, 9)) for lo, hi in zip(s["ci_low"], s["ci_high"])]


def test_percentile_vs_load_one_seed_and_categories():
    t = sweep_table(seeds=(1,))
    t = t[t["router.strategy"] == "random"]
    ax = plots.percentile_vs_load_plot(t, "workloads[0].arrival.rate", ("latency_p99",)).axes[0]
    assert [c.get_label() for c in ax.containers] == ["p99"]
    assert ax.containers[0].lines[2] == ()  # no error bars without replications
    # a non-numeric swept value: categories in order of appearance
    ax = plots.percentile_vs_load_plot(sweep_table(seeds=(1,)), "router.strategy",
                                       ("latency_p50",)).axes[0]
    assert [x.get_text() for x in ax.get_xticklabels()] == ["random", "least_latency"]
    assert list(ax.containers[0].lines[0].get_xdata()) == [0.0, 1.0]
    assert plots._percentile_name("latency_p999") == "p99.9"
    assert plots._percentile_name("p99_9") == "p99.9"


# =========================================================================== comparisons

def test_comparison_bars_from_paired_comparison():
    rows = []
    for s in range(1, 6):
        base = 0.2 + 0.01 * s
        rows += [{"v": "A", "seed": s, "latency_p99": base},
                 {"v": "B", "seed": s, "latency_p99": base - 0.05 + 0.001 * (s % 2)},
                 {"v": "C", "seed": s, "latency_p99": base + 0.002 * (s % 2 - 0.5)}]
    paired = A.paired_comparison(pd.DataFrame(rows), "latency_p99", "v", "A")
    fig = plots.comparison_bars(paired, metric="latency_p99")
    ax = fig.axes[0]
    bars = [p for p in ax.patches]
    assert len(bars) == 2
    # the first variant on top; widths are the mean differences in ms
    by_y = sorted(bars, key=lambda b: -b.get_y())
    assert [b.get_width() for b in by_y] == pytest.approx(list(paired["mean_diff"] * 1e3))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "C"]
    assert [t.get_position()[1] for t in ax.get_yticklabels()] == [1, 0]
    # whiskers at the CI ends
    err = [c for c in ax.containers if isinstance(c, ErrorbarContainer)][0]
    segs = sorted(err.lines[2][0].get_segments(), key=lambda v: -v[0, 1])
    for seg, (_, r) in zip(segs, paired.iterrows()):
        assert sorted(seg[:, 0]) == pytest.approx([r["ci_low"] * 1e3, r["ci_high"] * 1e3])
    # a zero line and units
    assert any(list(ln.get_xdata()) == [0, 0] for ln in ax.get_lines())
    assert "(ms)" in ax.get_xlabel() and "A" in ax.get_xlabel()
    # B is significantly faster (green), C not (grey)
    b_bar, c_bar = by_y
    assert bool(paired["significant"].iloc[0]) and not bool(paired["significant"].iloc[1])
    assert matplotlib.colors.to_hex(b_bar.get_facecolor()) == matplotlib.colors.to_hex("tab:green")
    assert matplotlib.colors.to_hex(c_bar.get_facecolor()) == matplotlib.colors.to_hex("0.65")
    # a success-rate comparison is in percentage points
    sr = paired.assign(mean_diff=0.01, ci_low=0.0, ci_high=0.02)
    assert "percentage points" in plots.comparison_bars(sr, metric="success_rate").axes[0].get_xlabel()
    with pytest.raises(ValueError, match="paired_comparison"):
        plots.comparison_bars(pd.DataFrame({"x": [1]}))


# =========================================================================== heatmap

def timeseries(nodes=("n-0", "n-1", "n-2"), times=range(1, 11), gateways=("gw-a", "gw-b"),
               seeds=(None,)) -> pd.DataFrame:
    rows = []
    for s in seeds:
        for t in times:
            for i, n in enumerate(nodes):
                for g in gateways:
                    rows.append({**({"seed": s} if s is not None else {}), "time": float(t),
                                 "node": n, "gateway": g, "queue_depth": (t + i) % 4,
                                 "in_flight": 1, "busy_gpus": 1,
                                 "gpu_utilization": (i + 1) / 4 if s in (None, 1) else 0.0,
                                 "up": True, "health": "Healthy", "circuit": "Closed",
                                 "latency_estimate": 0.01})
    return cat(pd.DataFrame(rows))


def test_node_heatmap_is_nodes_by_time_bins():
    ts = timeseries()
    fig = plots.node_heatmap(ts)
    ax = fig.axes[0]
    img = [a for a in ax.get_children() if isinstance(a, AxesImage)][0]
    arr = img.get_array()
    assert arr.shape == (3, 10)  # 3 nodes x 10 sample times (gateway duplicates dropped)
    assert np.allclose(arr[:, 0], [0.25, 0.5, 0.75])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["n-0", "n-1", "n-2"]
    # the sample at t describes (t - 1, t]: the image spans 0..10 s
    left, right, _, _ = img.get_extent()
    assert (left, right) == (0.0, 10.0)
    assert "(s)" in ax.get_xlabel()
    cbar = fig.axes[1]
    assert "GPU utilisation" in cbar.get_ylabel() and "share of GPUs busy" in cbar.get_ylabel()
    # bins of 2 s average two samples
    arr = [a for a in plots.node_heatmap(ts, "queue_depth", bin_width=2.0).axes[0].get_children()
           if isinstance(a, AxesImage)][0].get_array()
    assert arr.shape == (3, 5)
    assert arr[0, 0] == pytest.approx(((1 % 4) + (2 % 4)) / 2)
    # several seeds: the smallest by default, or the one asked for
    ts2 = timeseries(seeds=(1, 2))
    get = lambda f: [a for a in f.axes[0].get_children() if isinstance(a, AxesImage)][0].get_array()  # noqa: E731
    assert np.allclose(get(plots.node_heatmap(ts2))[:, 0], [0.25, 0.5, 0.75])
    assert np.allclose(get(plots.node_heatmap(ts2, seed=2)), 0.0)
    assert "seed 2" in plots.node_heatmap(ts2, seed=2).axes[0].get_title()


# =========================================================================== timeline

def timeline_tables():
    ts = timeseries(nodes=("n-0", "n-1"), times=range(1, 21))
    events = cat(pd.DataFrame.from_records([
        (0.5, "health", "gw-a", "n-0", "Unknown", "Healthy"),
        (0.6, "health", "gw-a", "n-1", "Unknown", "Healthy"),
        (4.0, "fault", "crash", "n-0", "start", ""),
        (5.0, "health", "gw-a", "n-0", "Healthy", "Unhealthy"),
        (5.0, "circuit", "gw-a", "n-0", "Closed", "Open"),
        (5.5, "health", "gw-b", "n-0", "Healthy", "Unhealthy"),
        (8.0, "fault", "crash", "n-0", "end", ""),
        (9.0, "circuit", "gw-a", "n-0", "Open", "HalfOpen"),
        (9.5, "circuit", "gw-a", "n-0", "HalfOpen", "Closed"),
        (10.0, "health", "gw-a", "n-0", "Unhealthy", "Healthy"),
        (15.0, "fault", "slow", "n-1", "start", ""),  # still active at the end
    ], columns=["time", "category", "source", "subject", "old", "new"]))
    att = []
    for t in np.arange(0.1, 20, 0.25):  # n-0 gets 3 of 4 attempts, none while crashed
        for j in range(4):
            node = "n-1" if (j == 3 or 4 <= t < 8) else "n-0"
            att.append({"request": len(att), "attempt": 0, "gateway": "gw-a", "kind": "success",
                        "node": node, "start": float(t), "end": float(t) + 0.1})
    att.append({"request": len(att), "attempt": 0, "gateway": "gw-a", "kind": "route_error",
                "node": None, "start": 1.0, "end": 1.0})
    return ts, events, cat(pd.DataFrame(att))


def test_timeline_panels_share_time_and_shade_faults():
    ts, ev, att = timeline_tables()
    fig = plots.timeline_plot(ts, ev, att, end=20.0)
    axes = fig.axes
    assert len(axes) == 4
    titles = [ax.get_title(loc="left") for ax in axes]
    assert titles[0].startswith("Queue depth") and titles[1].startswith("Routed share")
    assert titles[2].startswith("Health state") and titles[3].startswith("Circuit state")
    assert "gw-a" in titles[2]  # the first gateway's view
    for ax in axes[1:]:
        assert axes[0].get_shared_x_axes().joined(axes[0], ax)
    assert axes[-1].get_xlim() == (0.0, 20.0) and "(s)" in axes[-1].get_xlabel()
    assert "requests" in axes[0].get_ylabel()
    # both fault windows on every panel, the open one to the end
    for ax in axes:
        assert fault_spans(ax) == [(4.0, 8.0), (15.0, 20.0)]
    labels = axes[0].get_legend_handles_labels()[1]
    assert "fault: crash" in labels and "fault: slow" in labels
    assert labels[:2] == ["n-0", "n-1"]  # one queue-depth line per node
    # routed share: n-0 has 3/4 of the attempts before the crash, none during it
    share = axes[1]
    polys = [c for c in share.collections if isinstance(c, PolyCollection)]
    assert len(polys) == 2
    top_n0 = polys[0].get_paths()[0].vertices
    at = lambda v, x: v[(v[:, 0] > x - 1e-9) & (v[:, 0] < x + 1e-9), 1].max()  # noqa: E731
    assert at(top_n0, 2.0) == pytest.approx(0.75)
    assert at(top_n0, 5.0) == pytest.approx(0.0)
    # health of n-0 as gw-a sees it: Unknown, Healthy, Unhealthy (5..10), Healthy
    health = [c for c in axes[2].collections if isinstance(c, PolyCollection)]
    n0 = health[0]
    colors = [matplotlib.colors.to_hex(c) for c in n0.get_facecolors()]
    assert colors == [matplotlib.colors.to_hex(plots.HEALTH_COLORS[s]) for s in
                      ("Unknown", "Healthy", "Unhealthy", "Healthy")]
    xs = [tuple(np.round([p.vertices[:, 0].min(), p.vertices[:, 0].max()], 6)) for p in n0.get_paths()]
    assert xs == [(0.0, 0.5), (0.5, 5.0), (5.0, 10.0), (10.0, 20.0)]
    circuit = [c for c in axes[3].collections if isinstance(c, PolyCollection)][0]
    assert [matplotlib.colors.to_hex(c) for c in circuit.get_facecolors()] == [
        matplotlib.colors.to_hex(plots.CIRCUIT_COLORS[s]) for s in ("Closed", "Open", "HalfOpen", "Closed")]
    # another gateway's view
    fig_b = plots.timeline_plot(ts, ev, att, gateway="gw-b", end=20.0)
    hb = [c for c in fig_b.axes[2].collections if isinstance(c, PolyCollection)][0]
    assert [matplotlib.colors.to_hex(c) for c in hb.get_facecolors()] == [
        matplotlib.colors.to_hex(plots.HEALTH_COLORS[s]) for s in ("Healthy", "Unhealthy")]
    # without attempts: no routed-share panel, faults still on every panel
    fig = plots.timeline_plot(ts, ev)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert fault_spans(ax) == [(4.0, 8.0), (15.0, 20.0)]


# =========================================================================== a real run

MODELS = [{"model": "llm", "capabilities": ["generate"]}]


@pytest.fixture(scope="module")
def real():
    sc = Scenario(
        name="plots", duration=30.0,
        regions=[{"id": "eu"}, {"id": "us"}],
        network={"rtt": {"eu": {"us": 0.02}}},
        nodes=[{"name": "eu", "region": "eu", "count": 2, "gpus": 2, "models": MODELS},
               {"name": "us", "region": "us", "count": 2, "gpus": 2, "models": MODELS}],
        router={"strategy": "random", "fixes": ["active_probes"],
                "health": {"check_interval": 1.0}},
        workloads=[{"arrival": {"kind": "poisson", "rate": 30}}],
        faults=[{"kind": "crash", "target": "eu-0", "at": 8.0, "duration": 6.0},
                {"kind": "region_outage", "target": "us", "at": 20.0, "duration": 4.0}])
    return sc, run(sc, seed=3)


def test_real_run_figures(real, tmp_path):
    sc, res = real
    fig = plots.timeline_plot(res.timeseries, res.events, res.attempts,
                              end=res.simulated_seconds)
    windows = A.fault_windows(res.events)
    expected = sorted((round(s, 9), round(e, 9)) for s, e in zip(windows["start"], windows["end"]))
    assert expected == [(8.0, 14.0), (20.0, 24.0)]
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert fault_spans(ax) == expected
    heat = plots.node_heatmap(res.timeseries)
    arr = [a for a in heat.axes[0].get_children() if isinstance(a, AxesImage)][0].get_array()
    samples = res.timeseries["time"].nunique()
    assert arr.shape == (4, samples)
    gpu = A.gpu_utilization(res.timeseries, warmup=-1.0)
    assert np.allclose(np.nanmean(arr, axis=1), gpu["gpu_utilization"])
    pct = plots.latency_percentile_plot(res.requests)
    line = lines(pct.axes[0])[0]
    summary = res.summary()
    i = int(np.argmin(abs(line.get_xdata() - 2.0)))  # p50
    assert line.get_ydata()[i] == pytest.approx(
        np.percentile(res.requests.loc[res.requests["status"] == "success", "latency"],
                      100 * (1 - 1 / line.get_xdata()[i]), method="higher") * 1e3)
    assert summary["latency_p50"] * 1e3 == pytest.approx(
        np.percentile(res.requests.loc[res.requests["status"] == "success", "latency"], 50,
                      method="higher") * 1e3)
    written = plots.save(fig, tmp_path / "sub" / "timeline.png")
    assert [p.name for p in written] == ["timeline.png", "timeline.svg"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[0].stat().st_size > 10_000
    svg = written[1].read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "<dc:date>" not in svg  # no creation date in the file
    assert [p.name for p in plots.save(fig, tmp_path / "t.v1", formats=("svg",))] == ["t.v1.svg"]


def test_plots_leave_pyplot_and_the_backend_alone(reqs):
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    before = plt.get_fignums()
    plots.latency_percentile_plot(reqs[reqs["seed"] == 1])
    plots.timeline_plot(*timeline_tables())
    assert plt.get_fignums() == before and matplotlib.get_backend() == backend
