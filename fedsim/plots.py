"""fedsim.plots: the figures behind a comparison, drawn with matplotlib.

Every function takes the pandas tables of a run (:mod:`fedsim.world.result`), of several runs
concatenated with a ``seed`` / variant column, or the tables of :mod:`fedsim.analysis` and the
CLI (``sweep.csv``), and **returns the matplotlib Figure** for further editing; nothing is shown
or saved.  Figures are created with :class:`matplotlib.figure.Figure` directly, never through
pyplot's global state: no backend is selected or changed (safe under Agg, in scripts and in
Jupyter, where a returned figure renders once), and nothing needs closing.
:func:`save` writes a figure as PNG and SVG.

Latencies are stored in seconds and drawn in milliseconds.  Functions:

* :func:`latency_percentile_plot` - HdrHistogram-style percentile distribution, one line per
  variant, mean over seeds with a confidence band when seeds repeat.
* :func:`cdf_plot`, :func:`ccdf_plot` - (complementary) cumulative distribution of latency.
* :func:`percentile_vs_load_plot` - latency percentiles across a sweep, CI error bars.
* :func:`comparison_bars` - :func:`fedsim.analysis.paired_comparison` as bars with CI whiskers.
* :func:`node_heatmap` - a per-node timeseries value (GPU utilisation, queue depth, ...) as a
  nodes x time heatmap.
* :func:`timeline_plot` - queue depth, routed share, health and circuit state per node over
  time, fault windows shaded on every panel.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import analysis

__all__ = [
    "PERCENTILE_TICKS", "HEALTH_COLORS", "CIRCUIT_COLORS", "latency_percentile_plot",
    "percentile_grid", "cdf_plot", "ccdf_plot", "percentile_vs_load_plot", "comparison_bars",
    "node_heatmap", "timeline_plot", "save",
]

#: Tick positions of the percentile plot (percent).
PERCENTILE_TICKS: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9, 99.99)
HEALTH_COLORS = {"Healthy": "#4daf4a", "Degraded": "#ffb000", "Unhealthy": "#e41a1c",
                 "Unknown": "#bdbdbd"}
CIRCUIT_COLORS = {"Closed": "#4daf4a", "HalfOpen": "#ffb000", "Open": "#e41a1c"}
FAULT_COLORS = ("tab:red", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive",
                "tab:cyan")
FAULT_GID = "fault-window"  # gid of the shaded fault spans, to find them in a figure
MAX_LEGEND = 12

# label and unit of timeseries / metric columns; values are multiplied by the scale
_COLUMNS: dict[str, tuple[str, str, float]] = {
    "latency": ("end-to-end latency", "ms", 1e3),
    "ttft": ("time to first token", "ms", 1e3),
    "queue_wait": ("queue wait", "ms", 1e3),
    "service": ("service time", "ms", 1e3),
    "network": ("network time", "ms", 1e3),
    "gpu_utilization": ("GPU utilisation", "share of GPUs busy", 1.0),
    "busy_gpus": ("busy GPUs", "GPUs", 1.0),
    "queue_depth": ("queue depth", "requests waiting", 1.0),
    "in_flight": ("in flight", "requests", 1.0),
    "latency_estimate": ("router latency estimate (p50)", "ms", 1e3),
    "up": ("node up", "1 = up", 1.0),
}

Data = Union[pd.DataFrame, Mapping[str, Any], Sequence[float], np.ndarray, pd.Series]


# =============================================================================== helpers


def _figure(width: float = 8.0, height: float = 5.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _plain(s: pd.Series) -> pd.Series:
    return s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s


def _order(values) -> list:
    """Distinct values in order of first appearance (missing values left out)."""
    if isinstance(values, (pd.Series, pd.Index, np.ndarray)):
        distinct = list(pd.unique(_plain(pd.Series(values)) if isinstance(values, np.ndarray)
                                  else _plain(pd.Series(values.to_numpy()))))
    else:
        distinct = list(dict.fromkeys(values))
    return [v for v in distinct if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _distinct_str(s: pd.Series) -> set:
    """The distinct non-missing values of a column, as strings."""
    return {str(v) for v in pd.unique(_plain(s.dropna()))}


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _column_label(column: str) -> tuple[str, str, float]:
    return _COLUMNS.get(column, (column.replace("_", " "), "", 1.0))


def _with_unit(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


def _pct_text(p: float) -> str:
    return f"{p:.4f}".rstrip("0").rstrip(".") + "%"


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _legend(ax, **kwargs) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(handles, labels, fontsize="small", **kwargs)


def _values_frame(data: Data, variant_col: Optional[str], column: str, seed_col: str,
                  warmup: float, successful_only: bool = True) -> pd.DataFrame:
    """A long frame with ``_variant``, ``_seed`` and ``_value`` (the column, NaN dropped; only
    successful requests that arrived at or after ``warmup`` when the table says so).

    ``data`` is a requests-like DataFrame, a mapping label -> values (one variant each) or a
    plain sequence of values."""
    if isinstance(data, pd.DataFrame):
        df = data
        need = [column] + ([variant_col] if variant_col else [])
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise ValueError(f"table has no column(s) {missing}; it has {list(df.columns)}")
        keep = np.ones(len(df), dtype=bool)
        if successful_only and "status" in df.columns:
            keep &= (df["status"] == "success").to_numpy(dtype=bool)
        if warmup and "arrival" in df.columns:
            keep &= (df["arrival"] >= warmup).to_numpy(dtype=bool)
        df = df[keep]
        out = pd.DataFrame({
            "_variant": _plain(df[variant_col]).to_numpy() if variant_col else "all requests",
            "_seed": _plain(df[seed_col]).to_numpy() if seed_col and seed_col in df.columns else 0,
            "_value": pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)})
    elif isinstance(data, Mapping):
        parts = [pd.DataFrame({"_variant": str(k), "_seed": 0,
                               "_value": np.asarray(v, dtype=float).ravel()})
                 for k, v in data.items()]
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {"_variant": [], "_seed": [], "_value": []})
    else:
        out = pd.DataFrame({"_variant": column, "_seed": 0,
                            "_value": np.asarray(data, dtype=float).ravel()})
    return out[~np.isnan(out["_value"].to_numpy(dtype=float))]


def _t_band(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t interval over axis 0 (the seeds), column by column: the interval of
    :func:`fedsim.analysis.replication_summary`, vectorised over the percentile grid."""
    from scipy import stats

    k = values.shape[0]
    mean = values.mean(axis=0)
    if k < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    t = float(stats.t.ppf((1.0 + confidence) / 2.0, k - 1))
    half = t * values.std(axis=0, ddof=1) / math.sqrt(k)
    return mean, mean - half, mean + half


# =============================================================================== percentiles


def percentile_grid(max_percentile: float = 99.99, points: int = 300) -> np.ndarray:
    """Percentiles (0 ... ``max_percentile``) evenly spaced on the ``1 / (1 - p)`` log axis."""
    if not 0.0 < max_percentile < 100.0:
        raise ValueError(f"max_percentile must be in (0, 100), got {max_percentile}")
    x = np.logspace(0.0, math.log10(1.0 / (1.0 - max_percentile / 100.0)), points)
    return np.clip(100.0 * (1.0 - 1.0 / x), 0.0, max_percentile)


def latency_percentile_plot(data: Data, variant_col: Optional[str] = None, column: str = "latency",
                            seed_col: str = "seed", max_percentile: float = 99.99,
                            warmup: float = 0.0, confidence: float = 0.95,
                            title: Optional[str] = None, points: int = 300):
    """HdrHistogram-style latency distribution: x = percentile on a log scale of ``1/(1-p)``
    (ticks 50%, 90%, 99%, 99.9%, 99.99%), y = latency in ms, one line per variant.

    ``data``: a requests table (only successful requests count; ``warmup`` drops those that
    arrived earlier), several runs concatenated with ``variant_col`` and ``seed_col`` columns,
    a mapping label -> latencies (seconds) or one sequence of latencies.  Percentiles use
    numpy's ``method="higher"`` as :func:`fedsim.analysis.latency_percentiles` does.

    With several seeds per variant the line is the mean over seeds of each seed's percentile
    and a shaded band (a ``PolyCollection``) is the Student-t ``confidence`` interval across
    seeds at each percentile; with one seed there is no band.  A line stops at the highest
    percentile every seed's sample resolves (``1 - 1/n``), so a tail is never extrapolated.
    """
    label, unit, scale = _column_label(column)
    frame = _values_frame(data, variant_col, column, seed_col, warmup)
    grid = percentile_grid(max_percentile, points)
    fig = _figure()
    ax = fig.add_subplot()
    variants = _order(frame["_variant"])
    colors = _colors(len(variants))
    max_seeds = 1
    for variant, color in zip(variants, colors):
        sub = frame[frame["_variant"] == variant]
        seeds = [np.sort(g["_value"].to_numpy(dtype=float)) for _, g in
                 sub.groupby("_seed", sort=True)]
        n_min = min(len(v) for v in seeds)
        top = 100.0 * (1.0 - 1.0 / n_min) if n_min > 1 else 0.0
        ps = grid[grid <= top + 1e-12]
        if not len(ps):
            ps = grid[:1]
        curves = np.vstack([np.percentile(v, ps, method="higher") for v in seeds]) * scale
        mean, lo, hi = _t_band(curves, confidence)
        x = 1.0 / (1.0 - ps / 100.0)
        ax.plot(x, mean, color=color, linewidth=1.8, label=str(variant),
                marker="o" if len(x) == 1 else None)
        if len(seeds) > 1:
            max_seeds = max(max_seeds, len(seeds))
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0,
                            label=f"_{variant} {confidence:.0%} CI")
    ax.set_xscale("log")
    ticks = [p for p in PERCENTILE_TICKS if p <= max_percentile + 1e-9]
    ax.set_xticks([1.0 / (1.0 - p / 100.0) for p in ticks])
    ax.set_xticklabels([_pct_text(p) for p in ticks])
    ax.xaxis.set_minor_locator(_null_locator())
    ax.set_xlim(1.0, 1.0 / (1.0 - max_percentile / 100.0))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("percentile (log scale of 1/(1-p))")
    ax.set_ylabel(_with_unit(label, unit))
    suffix = (f"; mean of {max_seeds} seeds, shaded {confidence:.0%} CI" if max_seeds > 1 else "")
    ax.set_title(title or f"{label[0].upper()}{label[1:]} by percentile{suffix}")
    ax.grid(True, which="major", alpha=0.3)
    if variants:
        _legend(ax, loc="upper left")
    else:
        _no_data(ax, "no successful requests")
    return fig


def _null_locator():
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _distribution(data: Data, variant_col, column, seed_col, warmup, title, complementary,
                  log_x, max_points):
    label, unit, scale = _column_label(column)
    frame = _values_frame(data, variant_col, column, seed_col, warmup)
    fig = _figure()
    ax = fig.add_subplot()
    variants = _order(frame["_variant"])
    smallest = 1.0
    for variant, color in zip(variants, _colors(len(variants))):
        v = np.sort(frame.loc[frame["_variant"] == variant, "_value"].to_numpy(dtype=float)) * scale
        n = len(v)
        idx = np.arange(n)
        if n > max_points:  # thin to max_points ranks, keeping both ends
            idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
        if complementary:
            y = (n - 1 - idx) / n  # P(X > x_i) for the (idx+1)-th smallest value
            keep = y > 0
            x, y = v[idx][keep], y[keep]
            smallest = min(smallest, 1.0 / n)
        else:
            x, y = v[idx], (idx + 1) / n
        ax.step(x, y, where="post", color=color, linewidth=1.6, label=str(variant))
    ax.set_xlabel(_with_unit(label, unit) + (" [log scale]" if log_x else ""))
    if log_x:
        ax.set_xscale("log")
    if complementary:
        ax.set_yscale("log")
        ax.set_ylim(bottom=smallest / 2, top=1.05)
        ax.set_ylabel("share of requests above x (log scale)")
        default = f"CCDF of {label}"
    else:
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share of requests at or below x")
        default = f"CDF of {label}"
    ax.set_title(title or default)
    ax.grid(True, which="major", alpha=0.3)
    if variants:
        _legend(ax, loc="lower right" if not complementary else "lower left")
    else:
        _no_data(ax, "no successful requests")
    return fig


def cdf_plot(data: Data, variant_col: Optional[str] = None, column: str = "latency",
             seed_col: str = "seed", warmup: float = 0.0, log_x: bool = False,
             title: Optional[str] = None, max_points: int = 4000):
    """Empirical CDF of latency (ms), one step line per variant (seeds pooled): y is the share
    of successful requests at or below x.  ``data`` as for :func:`latency_percentile_plot`."""
    return _distribution(data, variant_col, column, seed_col, warmup, title, False, log_x,
                         max_points)


def ccdf_plot(data: Data, variant_col: Optional[str] = None, column: str = "latency",
              seed_col: str = "seed", warmup: float = 0.0, log_x: bool = False,
              title: Optional[str] = None, max_points: int = 4000):
    """Complementary CDF (survival function) of latency on a log y axis: the share of
    successful requests slower than x, which makes the tail readable.  One line per variant,
    seeds pooled."""
    return _distribution(data, variant_col, column, seed_col, warmup, title, True, log_x,
                         max_points)


# =============================================================================== sweeps


def _percentile_name(col: str) -> str:
    """``latency_p99`` -> ``p99``, ``latency_p999`` -> ``p99.9`` (summary naming),
    ``p99_9`` -> ``p99.9`` (analysis naming)."""
    m = re.search(r"p(\d+(?:_\d+)?)$", col)
    if not m:
        return col
    digits = m.group(1)
    if "_" in digits:
        return "p" + digits.replace("_", ".")
    if len(digits) > 2 and set(digits[2:]) == {"9"} and digits.startswith("99"):
        return "p99." + digits[2:]
    return "p" + digits


def _as_number(v: Any) -> float:
    if v is None:
        return math.nan
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return float(v)
    from .world.units import parse_quantity

    try:
        q = parse_quantity(str(v).strip())
        return float(q)
    except (TypeError, ValueError):
        return math.nan


def numeric_values(values: Sequence[Any]) -> Optional[np.ndarray]:
    """``values`` as floats (numbers, or strings with a unit: ``20/s``, ``250ms``, ``5%``);
    None when any non-missing value is not a number."""
    out = np.array([_as_number(v) for v in values], dtype=float)
    missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values])
    if np.isnan(out[~missing]).any():
        return None
    return out


def percentile_vs_load_plot(sweep_table: pd.DataFrame, load_col: str,
                            percentile_cols: Sequence[str] = ("latency_p50", "latency_p99"),
                            variant_col: Optional[str] = None, seed_col: str = "seed",
                            confidence: float = 0.95, load_label: Optional[str] = None,
                            log_y: bool = False, title: Optional[str] = None):
    """Latency percentiles across a sweep: x = ``load_col`` (offered load or any swept value),
    y = the mean over seeds of each ``percentile_cols`` column (seconds, drawn in ms), one line
    per (variant, percentile): colour = variant, line style = percentile.

    ``sweep_table`` has one row per (point, seed), like ``sweep.csv``.  When seeds repeat,
    error bars are the Student-t ``confidence`` interval across seeds
    (:func:`fedsim.analysis.replication_summary`).  Values of ``load_col`` may be numbers or
    strings with a unit (``20/s``); anything else is drawn as categories in order of
    appearance.  Rows with an ``error`` are left out.
    """
    cols = list(percentile_cols)
    need = [load_col, *cols, *([variant_col] if variant_col else [])]
    missing = [c for c in need if c not in sweep_table.columns]
    if missing:
        raise ValueError(f"sweep table has no column(s) {missing}; it has "
                         f"{list(sweep_table.columns)}")
    df = sweep_table
    if "error" in df.columns:
        df = df[df["error"].fillna("").astype(str) == ""]
    raw = list(_plain(df[load_col]))
    nums = numeric_values(raw)
    categorical = nums is None
    if categorical:
        cats = _order(str(v) for v in raw)
        x = np.array([cats.index(str(v)) for v in raw], dtype=float)
    else:
        x = nums
    df = df.assign(_x=x, _variant=_plain(df[variant_col]).astype(str).to_numpy() if variant_col
                   else "all")
    df = df[~np.isnan(df["_x"].to_numpy(dtype=float))]
    for c in cols:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    summary = analysis.replication_summary(df, cols, by=["_variant", "_x"], confidence=confidence)
    fig = _figure(8.5, 5.0)
    ax = fig.add_subplot()
    variants = _order(df["_variant"])
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D"]
    any_ci = False
    for variant, color in zip(variants, _colors(len(variants))):
        for j, col in enumerate(cols):
            s = summary[(summary["_variant"] == variant) & (summary["metric"] == col)]
            s = s.sort_values("_x")
            s = s[s["n"] > 0]
            if not len(s):
                continue
            mean = s["mean"].to_numpy(dtype=float) * 1e3
            lo = s["ci_low"].to_numpy(dtype=float) * 1e3
            hi = s["ci_high"].to_numpy(dtype=float) * 1e3
            has_ci = ~np.isnan(lo)
            any_ci |= bool(has_ci.any())
            yerr = np.vstack([np.where(has_ci, mean - lo, 0.0), np.where(has_ci, hi - mean, 0.0)])
            name = _percentile_name(col)
            label = f"{variant} {name}" if variant_col else name
            ax.errorbar(s["_x"].to_numpy(dtype=float), mean,
                        yerr=yerr if has_ci.any() else None, color=color,
                        linestyle=styles[j % len(styles)], marker=markers[j % len(markers)],
                        markersize=4, capsize=3, linewidth=1.5, label=label)
    if categorical:
        ax.set_xticks(range(len(cats)))
        tilt = len(cats) > 3
        ax.set_xticklabels(cats, rotation=20 if tilt else 0, ha="right" if tilt else "center",
                           fontsize="small")
    xl = load_label or load_col
    if load_label is None and not categorical and "rate" in load_col:
        xl += " (requests/s)"
    ax.set_xlabel(xl)
    ax.set_ylabel("latency (ms)")
    if log_y:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    suffix = f"; mean over seeds, {confidence:.0%} CI bars" if any_ci else ""
    ax.set_title(title or f"Latency percentiles vs {load_col}{suffix}")
    ax.grid(True, alpha=0.3)
    if len(summary):
        _legend(ax, loc="upper left")
    else:
        _no_data(ax)
    return fig


# =============================================================================== comparisons


def _signed(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:+,.0f}"
    if a >= 10:
        return f"{v:+.1f}"
    return f"{v:+.3g}"


def _metric_scale(metric: Optional[str]) -> tuple[float, str, Optional[bool]]:
    """(scale, unit, lower_is_better) of a metric column name."""
    if not metric:
        return 1.0, "", None
    m = metric.lower()
    if "latency" in m or "ttft" in m or m.startswith("time_to") or m.endswith("_wait"):
        return 1e3, "ms", True
    if "success_rate" in m or "retry_effectiveness" in m or m.endswith("_share") or m == "share":
        return 100.0, "percentage points", False
    if "retries" in m or "violations" in m or "failed" in m or "cost" in m or m == "cv":
        return 1.0, "", True
    if "goodput" in m:
        return 1.0, "requests/s", False
    return 1.0, "", None


def comparison_bars(paired_table: pd.DataFrame, metric: Optional[str] = None,
                    scale: Optional[float] = None, unit: Optional[str] = None,
                    lower_is_better: Optional[bool] = None, title: Optional[str] = None,
                    confidence: float = 0.95):
    """:func:`fedsim.analysis.paired_comparison` as horizontal bars: the mean paired difference
    (variant - baseline) per variant with its confidence interval as whiskers and a zero line.

    ``metric`` names the compared column (e.g. ``"latency_p99"``) for the axis label; it also
    picks the unit (latency in ms, rates in percentage points) unless ``scale`` / ``unit`` are
    given.  Significant differences are coloured (green when better, red when worse, by
    ``lower_is_better``, inferred from the metric), the others grey.  Any ``by`` columns of
    the table are added to the bar labels.
    """
    need = ["variant", "baseline", "mean_diff", "ci_low", "ci_high"]
    missing = [c for c in need if c not in paired_table.columns]
    if missing:
        raise ValueError(f"paired table has no column(s) {missing}; pass the output of "
                         "fedsim.analysis.paired_comparison")
    auto_scale, auto_unit, auto_lower = _metric_scale(metric)
    scale = auto_scale if scale is None else scale
    unit = auto_unit if unit is None else unit
    lower_is_better = auto_lower if lower_is_better is None else lower_is_better
    extra = [c for c in paired_table.columns if c not in (
        "variant", "baseline", "n", "baseline_mean", "variant_mean", "mean_diff", "std_diff",
        "ci_low", "ci_high", "relative_diff", "t_statistic", "p_value", "wilcoxon_statistic",
        "wilcoxon_p_value", "significant")]
    t = paired_table.reset_index(drop=True)
    labels = [" / ".join([*(f"{t.at[i, c]}" for c in extra), str(t.at[i, "variant"])])
              for i in range(len(t))]
    n = len(t)
    fig = _figure(8.0, max(2.5, 1.2 + 0.55 * n))
    ax = fig.add_subplot()
    mean = t["mean_diff"].to_numpy(dtype=float) * scale
    lo = t["ci_low"].to_numpy(dtype=float) * scale
    hi = t["ci_high"].to_numpy(dtype=float) * scale
    sig = (t["significant"].astype(bool).to_numpy() if "significant" in t.columns
           else np.zeros(n, dtype=bool))
    colors = []
    for m, s in zip(mean, sig):
        if not s or math.isnan(m):
            colors.append("0.65")
        elif lower_is_better is None:
            colors.append("tab:blue")
        else:
            colors.append("tab:green" if (m < 0) == lower_is_better else "tab:red")
    y = np.arange(n)[::-1]
    ax.barh(y, np.nan_to_num(mean), color=colors, height=0.6, label="_bars")
    has_ci = ~np.isnan(lo) & ~np.isnan(hi)
    if has_ci.any():
        ax.errorbar(mean[has_ci], y[has_ci],
                    xerr=np.vstack([mean[has_ci] - lo[has_ci], hi[has_ci] - mean[has_ci]]),
                    fmt="none", ecolor="black", elinewidth=1.2, capsize=5,
                    label=f"{confidence:.0%} CI")
    ax.axvline(0.0, color="black", linewidth=1.0)
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    if n:
        ax.set_ylim(-0.7, n - 0.3)
    fmt_unit = f" {unit}" if unit and unit != "percentage points" else (" pp" if unit else "")
    for yi, m, l_, h_, p in zip(y, mean, lo, hi, t["p_value"] if "p_value" in t.columns
                                else [math.nan] * n):
        if math.isnan(m):
            continue
        text = f"{_signed(m)}{fmt_unit}"
        if not math.isnan(l_):
            text += f" [{_signed(l_)}, {_signed(h_)}]"
        else:
            text += " (no CI: 1 seed)"
        if p is not None and not (isinstance(p, float) and math.isnan(p)):
            text += f", p={p:.2g}"
        ax.annotate(text, (0, yi), xytext=(4, 10), textcoords="offset points", fontsize="x-small",
                    color="0.2")
    baselines = _order(t["baseline"].astype(str)) if n else []
    base = baselines[0] if len(baselines) == 1 else "baseline"
    what = metric.replace("_", " ") if metric else "metric"
    ax.set_xlabel(_with_unit(f"difference in {what}, variant - {base}", unit))
    ax.set_title(title or f"Paired difference vs {base} ({what}), {confidence:.0%} CI across seeds")
    ax.grid(True, axis="x", alpha=0.3)
    from matplotlib.patches import Patch

    handles = [Patch(color="0.65", label="not significant")]
    if sig.any():
        if lower_is_better is None:
            handles.insert(0, Patch(color="tab:blue", label="significant"))
        else:
            handles[:0] = [Patch(color="tab:green", label="significantly better"),
                           Patch(color="tab:red", label="significantly worse")]
    h, l = ax.get_legend_handles_labels()
    if n:
        ax.legend(handles=handles + h, fontsize="small", loc="best")
    else:
        _no_data(ax, "no variants to compare")
    return fig


# =============================================================================== time series


def _one_seed(df: Optional[pd.DataFrame], seed_col: str, seed: Any) -> Optional[pd.DataFrame]:
    if df is None or seed_col not in df.columns or seed is None:
        return df
    return df[(_plain(df[seed_col]) == seed).to_numpy()]


def _pick_seed(tables: Sequence[Optional[pd.DataFrame]], seed_col: str, seed: Any) -> Any:
    if seed is not None:
        return seed
    for t in tables:
        if t is not None and seed_col in t.columns and len(t):
            return sorted(_order(_plain(t[seed_col])))[0]
    return None


def _sample_interval(times: np.ndarray) -> float:
    times = np.unique(times)
    gaps = np.diff(times)
    gaps = gaps[gaps > 0]
    if len(gaps):
        return float(gaps.min())
    return float(times[0]) if len(times) and times[0] > 0 else 1.0


def node_heatmap(timeseries: pd.DataFrame, value: str = "gpu_utilization",
                 seed: Any = None, gateway: Optional[str] = None, seed_col: str = "seed",
                 bin_width: Optional[float] = None, max_bins: int = 400,
                 title: Optional[str] = None, cmap: Optional[str] = None,
                 vmin: Optional[float] = None, vmax: Optional[float] = None):
    """A per-node timeseries ``value`` (``gpu_utilization``, ``queue_depth``, ``busy_gpus``,
    ``in_flight``, ...) as a heatmap: rows = nodes (sorted), columns = time bins.

    Node state is sampled once per gateway; node-level values are de-duplicated on (time,
    node), gateway views (``latency_estimate``) use ``gateway`` (default: the first).  Several
    seeds: ``seed`` (default: the smallest).  Columns are the sample times, or bins of
    ``bin_width`` seconds (averaged) when given or when there are more than ``max_bins``
    samples.  The image's array has shape (nodes, time bins).
    """
    for c in ("time", "node", value):
        if c not in timeseries.columns:
            raise ValueError(f"timeseries has no column {c!r}; it has {list(timeseries.columns)}")
    seed = _pick_seed([timeseries], seed_col, seed)
    ts = _one_seed(timeseries, seed_col, seed)
    label, unit, scale = _column_label(value)
    if value in ("latency_estimate", "health", "circuit") and "gateway" in ts.columns and len(ts):
        gws = sorted(_order(_plain(ts["gateway"]).astype(str)))
        gateway = gateway or gws[0]
        ts = ts[(_plain(ts["gateway"]).astype(str) == gateway).to_numpy()]
    ts = pd.DataFrame({"time": ts["time"].to_numpy(dtype=float),
                       "node": _plain(ts["node"]).astype(str).to_numpy(),
                       "v": pd.to_numeric(ts[value], errors="coerce").to_numpy(dtype=float) * scale})
    ts = ts.drop_duplicates(["time", "node"])
    fig = _figure(10.0, 5.0)
    ax = fig.add_subplot()
    nodes = sorted(_order(ts["node"]))
    if not len(ts):
        _no_data(ax, "no samples")
        ax.set_title(title or f"{label} per node")
        return fig
    dt = _sample_interval(ts["time"].to_numpy())
    times = np.unique(ts["time"].to_numpy())
    if bin_width is None and len(times) > max_bins:
        bin_width = (times[-1] - times[0] + dt) / max_bins
    if bin_width is not None:
        if not bin_width > 0:
            raise ValueError(f"bin_width must be > 0 seconds, got {bin_width}")
        # a sample at t describes (t - dt, t]: bin it by the start of its interval
        k = np.floor((ts["time"].to_numpy() - dt) / bin_width + 1e-9).astype(np.int64)
        ts = ts.assign(_b=k)
        kmin, kmax = int(k.min()), int(k.max())
        table = ts.pivot_table(index="node", columns="_b", values="v", aggfunc="mean")
        table = table.reindex(index=nodes, columns=range(kmin, kmax + 1))
        left, right = kmin * bin_width, (kmax + 1) * bin_width
    else:
        table = ts.pivot_table(index="node", columns="time", values="v", aggfunc="mean")
        table = table.reindex(index=nodes, columns=times)
        left, right = float(times[0] - dt), float(times[-1])
    matrix = table.to_numpy(dtype=float)
    if value == "gpu_utilization":
        vmin = 0.0 if vmin is None else vmin
        vmax = 1.0 if vmax is None else vmax
    elif vmin is None:
        vmin = 0.0
    im = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", interpolation="nearest",
                   cmap=cmap or ("viridis" if value != "queue_depth" else "magma"),
                   vmin=vmin, vmax=vmax, extent=(left, right, len(nodes) - 0.5, -0.5))
    if len(nodes) <= 40:
        ax.set_yticks(range(len(nodes)))
        ax.set_yticklabels(nodes, fontsize="small" if len(nodes) > 12 else None)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(_with_unit(label, unit))
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("node")
    where = []
    if seed is not None:
        where.append(f"seed {seed}")
    if value in ("latency_estimate",) and gateway:
        where.append(f"as {gateway} sees it")
    ax.set_title(title or f"{label[0].upper()}{label[1:]} per node over time"
                 + (f" ({', '.join(where)})" if where else ""))
    return fig


def _segments(events: Optional[pd.DataFrame], timeseries: Optional[pd.DataFrame], category: str,
              gateway: Optional[str], nodes: Sequence[str], initial: str,
              t_end: float) -> dict[str, list[tuple[float, float, str]]]:
    """Per node, ``(start, end, state)`` of its ``category`` (health / circuit) state as
    ``gateway`` sees it: transitions from the events table; the state before the first one is
    that transition's old state, else the first timeseries sample, else ``initial``."""
    trans: dict[str, list[tuple[float, str, str]]] = {}
    if events is not None and len(events):
        e = events[(_plain(events["category"]) == category).to_numpy()]
        if gateway is not None:
            e = e[(_plain(e["source"]).astype(str) == gateway).to_numpy()]
        e = e.sort_values("time", kind="stable")
        for t, n, old, new in zip(e["time"], _plain(e["subject"]).astype(str), _plain(e["old"]),
                                  _plain(e["new"])):
            trans.setdefault(n, []).append((float(t), str(old), str(new)))
    first_sample: dict[str, str] = {}
    if timeseries is not None and category in timeseries.columns and len(timeseries):
        ts = timeseries
        if gateway is not None and "gateway" in ts.columns:
            ts = ts[(_plain(ts["gateway"]).astype(str) == gateway).to_numpy()]
        ts = ts.sort_values("time", kind="stable").drop_duplicates("node")
        first_sample = dict(zip(_plain(ts["node"]).astype(str), _plain(ts[category]).astype(str)))
    out = {}
    for n in nodes:
        rows = trans.get(n, [])
        state = rows[0][1] if rows else first_sample.get(n, initial)
        segs, t0 = [], 0.0
        for t, _, new in rows:
            if t > t0:
                segs.append((t0, min(t, t_end), state))
            state, t0 = new, t
        if t_end > t0:
            segs.append((t0, t_end, state))
        out[n] = [s for s in segs if s[1] > s[0]]
    return out


def _state_panel(ax, segments: dict[str, list[tuple[float, float, str]]], nodes: Sequence[str],
                 colors: Mapping[str, str], title: str) -> None:
    from matplotlib.patches import Patch

    seen = []
    for i, n in enumerate(nodes):
        segs = segments.get(n, [])
        if not segs:
            continue
        ax.broken_barh([(a, b - a) for a, b, _ in segs], (i - 0.4, 0.8),
                       facecolors=[colors.get(s, "0.3") for _, _, s in segs], linewidth=0)
        seen += [s for _, _, s in segs]
    ax.set_ylabel("node")
    ax.set_title(title, fontsize="medium", loc="left")
    if not nodes:
        ax.set_yticks([])
        _no_data(ax, "no nodes")
        return
    ax.set_yticks(range(len(nodes)))
    ax.set_yticklabels(nodes, fontsize="small" if len(nodes) > 8 else None)
    ax.set_ylim(len(nodes) - 0.5, -0.5)
    states = [s for s in colors if s in seen] + [s for s in _order(seen) if s not in colors]
    ax.legend(handles=[Patch(color=colors.get(s, "0.3"), label=s) for s in states],
              fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))


def timeline_plot(timeseries: pd.DataFrame, events: Optional[pd.DataFrame],
                  attempts: Optional[pd.DataFrame] = None, seed: Any = None,
                  gateway: Optional[str] = None, seed_col: str = "seed",
                  bin_width: Optional[float] = None, end: Optional[float] = None,
                  title: Optional[str] = None):
    """What happened over time, one panel per aspect, sharing the time axis:

    1. queue depth per node (requests waiting);
    2. routed share per node (only with ``attempts``): of the attempts that reached a node
       (success or failure) starting in each time bin, the share each node got, stacked;
       ``bin_width`` defaults to the sample interval (at least duration / 200);
    3. health state per node and 4. circuit state per node, as coloured bands, as
       ``gateway`` (default: the first gateway) sees them (each gateway has its own view);

    with every fault window of :func:`fedsim.analysis.fault_windows` shaded on every panel
    (``axvspan`` patches with gid ``"fault-window"``; a fault still active at the end lasts to
    ``end``).  Several seeds: ``seed`` picks one (default: the smallest).
    """
    seed = _pick_seed([timeseries, events, attempts], seed_col, seed)
    ts = _one_seed(timeseries, seed_col, seed)
    ev = _one_seed(events, seed_col, seed)
    at = _one_seed(attempts, seed_col, seed)
    has_ts = ts is not None and len(ts) > 0
    nodes = set()
    if has_ts:
        nodes |= _distinct_str(ts["node"])
    if at is not None and len(at):
        nodes |= _distinct_str(at["node"])
    nodes = sorted(nodes)
    if gateway is None:
        gws = set()
        if has_ts and "gateway" in ts.columns:
            gws |= _distinct_str(ts["gateway"])
        if ev is not None and len(ev):
            sc = ev[_plain(ev["category"]).isin(["health", "circuit"]).to_numpy()]
            gws |= _distinct_str(sc["source"])
        gateway = sorted(gws)[0] if gws else None
    times = []
    if has_ts:
        times.append(float(ts["time"].max()))
    if ev is not None and len(ev):
        times.append(float(ev["time"].max()))
    if at is not None and len(at):
        times.append(float(at["end"].max()) if "end" in at.columns else float(at["start"].max()))
    t_end = float(end) if end is not None else (max(times) if times else 1.0)
    t_end = t_end if t_end > 0 else 1.0

    panels = ["queue", *(["share"] if attempts is not None else []), "health", "circuit"]
    state_h = max(1.4, 0.28 * len(nodes) + 0.6)
    heights = {"queue": 2.6, "share": 2.4, "health": state_h, "circuit": state_h}
    fig = _figure(11.0, sum(heights[p] for p in panels) + 1.0)
    axes = fig.subplots(len(panels), 1, sharex=True,
                        gridspec_kw={"height_ratios": [heights[p] for p in panels]})
    axes = list(np.atleast_1d(axes))
    ax_of = dict(zip(panels, axes))
    colors = dict(zip(nodes, _colors(len(nodes))))

    # 1. queue depth
    ax = ax_of["queue"]
    if has_ts:
        q = pd.DataFrame({"time": ts["time"].to_numpy(dtype=float),
                          "node": _plain(ts["node"]).astype(str).to_numpy(),
                          "q": ts["queue_depth"].to_numpy(dtype=float)})
        q = q.drop_duplicates(["time", "node"]).sort_values("time", kind="stable")
        for i, n in enumerate(nodes):
            rows = q[q["node"] == n]
            if len(rows):
                ax.plot(rows["time"], rows["q"], color=colors[n], linewidth=1.0,
                        label=n if i < MAX_LEGEND else f"_{n}")
    else:
        _no_data(ax, "no samples")
    ax.set_ylabel("queue depth\n(requests waiting)")
    ax.set_ylim(bottom=0)
    ax.set_title("Queue depth per node", fontsize="medium", loc="left")

    # 2. routed share
    if "share" in ax_of:
        ax = ax_of["share"]
        sent = None
        if at is not None and len(at):
            sent = at[_plain(at["kind"]).isin(["success", "failure"]).to_numpy()
                      & at["node"].notna().to_numpy()]
        if sent is not None and len(sent):
            bw = bin_width or max(_sample_interval(ts["time"].to_numpy()) if has_ts else 0.0,
                                  t_end / 200.0)
            k = np.floor(sent["start"].to_numpy(dtype=float) / bw).astype(np.int64)
            counts = (pd.DataFrame({"k": k, "node": _plain(sent["node"]).astype(str).to_numpy()})
                      .groupby(["k", "node"]).size().unstack(fill_value=0))
            bins = np.arange(0, max(int(math.ceil(t_end / bw)), int(k.max()) + 1))
            counts = counts.reindex(index=bins, columns=nodes, fill_value=0).fillna(0)
            total = counts.sum(axis=1).to_numpy(dtype=float)
            share = counts.to_numpy(dtype=float) / np.where(total > 0, total, np.nan)[:, None]
            share = np.nan_to_num(share)
            edges = np.append(bins * bw, (bins[-1] + 1) * bw)
            lower = np.zeros(len(bins))
            for j, n in enumerate(nodes):
                upper = lower + share[:, j]
                ax.fill_between(edges, np.append(lower, lower[-1]), np.append(upper, upper[-1]),
                                step="post", color=colors[n], linewidth=0, alpha=0.85,
                                label=f"_{n}")
                lower = upper
            ax.set_ylim(0, 1)
        else:
            _no_data(ax, "no attempts")
        ax.set_ylabel("routed share\n(of attempts)")
        ax.set_title("Routed share per node (attempts sent per time bin)", fontsize="medium",
                     loc="left")

    # 3./4. health and circuit
    seen_by = f" as {gateway} sees it" if gateway else ""
    _state_panel(ax_of["health"],
                 _segments(ev, ts, "health", gateway, nodes, "Unknown", t_end), nodes,
                 HEALTH_COLORS, f"Health state per node{seen_by}")
    _state_panel(ax_of["circuit"],
                 _segments(ev, ts, "circuit", gateway, nodes, "Closed", t_end), nodes,
                 CIRCUIT_COLORS, f"Circuit state per node{seen_by}")

    # fault windows on every panel
    windows = (analysis.fault_windows(ev) if ev is not None and len(ev)
               else pd.DataFrame(columns=["kind", "subject", "start", "end"]))
    kinds = _order(windows["kind"].astype(str))
    kind_color = {k: FAULT_COLORS[i % len(FAULT_COLORS)] for i, k in enumerate(kinds)}
    for i, ax in enumerate(axes):
        labelled = set()
        for kind, subject, start, stop in zip(windows["kind"].astype(str), windows["subject"],
                                              windows["start"], windows["end"]):
            stop = t_end if stop is None or math.isnan(stop) else float(stop)
            first = i == 0 and kind not in labelled
            labelled.add(kind)
            ax.axvspan(float(start), stop, color=kind_color[kind], alpha=0.15, linewidth=0,
                       gid=FAULT_GID, label=f"fault: {kind}" if first else f"_fault {kind}")
        ax.grid(True, axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if labels:
        axes[0].legend(handles, labels, fontsize="small", loc="upper left",
                       bbox_to_anchor=(1.0, 1.0), ncol=2 if len(labels) > 14 else 1)
    axes[-1].set_xlim(0, t_end)
    axes[-1].set_xlabel("simulated time (s)")
    fig.suptitle(title or "Timeline" + (f" (seed {seed})" if seed is not None else ""))
    return fig


# =============================================================================== saving


_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "eps", "ps", "webp", "tif", "tiff")


def save(fig, path_without_ext: Union[str, Path], formats: Sequence[str] = ("png", "svg"),
         dpi: Optional[float] = None) -> list[Path]:
    """Write ``fig`` once per format (``<path>.png``, ``<path>.svg``; a known extension on
    ``path`` is replaced), creating the folder; returns the paths written.  Files carry no
    creation date (and SVG ids are salted with a fixed string)."""
    from matplotlib import rc_context

    path = Path(path_without_ext)
    if path.suffix.lstrip(".").lower() in _FORMATS:
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        target = path.with_name(f"{path.name}.{fmt}")
        metadata = {"Date": None} if fmt in ("svg", "pdf") else (
            {"Software": None} if fmt == "png" else None)
        with rc_context({"svg.hashsalt": "fedsim"}):  # stable ids inside the SVG
            fig.savefig(target, format=fmt, dpi=dpi, metadata=metadata)
        written.append(target)
    return written
