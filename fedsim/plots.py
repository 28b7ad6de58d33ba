"""Plots of a run (a first version of the analysis layer's figures).

* :func:`latency_percentiles` — HdrHistogram-style percentile plot: x is the percentile on a
  log scale of ``1 / (1 - p)`` (50%, 90%, 99%, 99.9%, 99.99%), y is latency.
* :func:`timeline` — queue depth per node over time, fault windows shaded.

Both write a PNG and never open a window (matplotlib's Agg backend).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

MAX_PERCENTILE = 0.9999
TICKS = (0.0, 0.5, 0.9, 0.99, 0.999, 0.9999)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def percentile_curve(latencies: Sequence[float], points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: x = 1/(1-p) on a log grid from p=0 to p=99.99% (or to the last
    percentile the sample resolves), y = the latency at that percentile (nearest rank)."""
    values = np.sort(np.asarray(latencies, dtype=float))
    values = values[~np.isnan(values)]
    if not len(values):
        return np.empty(0), np.empty(0)
    top = min(MAX_PERCENTILE, 1.0 - 1.0 / (len(values) + 1)) if len(values) > 1 else 0.0
    x_max = 1.0 / (1.0 - top)
    x = np.logspace(0.0, math.log10(x_max), points) if x_max > 1 else np.array([1.0])
    p = 1.0 - 1.0 / x
    idx = np.clip(np.ceil(p * len(values)).astype(int) - 1, 0, len(values) - 1)
    return x, values[idx]


def latency_percentiles(series: Mapping[str, Sequence[float]], path: Path,
                        title: str = "latency by percentile", unit_scale: float = 1e3,
                        unit: str = "ms", emphasis: Optional[str] = None) -> Path:
    """One line per series (latencies in seconds, drawn in ``unit``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    drawn = 0
    for label, lat in series.items():
        x, y = percentile_curve(lat)
        if not len(x):
            continue
        thin = emphasis is not None and label != emphasis
        ax.plot(x, y * unit_scale, label=label, linewidth=0.9 if thin else 1.8,
                alpha=0.55 if thin else 1.0)
        drawn += 1
    ax.set_xscale("log")
    ax.set_xlim(1.0, 1.0 / (1.0 - MAX_PERCENTILE))
    ax.set_xticks([1.0 / (1.0 - p) for p in TICKS])
    ax.set_xticklabels([_pct(p) for p in TICKS])
    ax.minorticks_off()
    ax.set_xlabel("percentile")
    ax.set_ylabel(f"latency ({unit})")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if drawn:
        ax.legend(loc="upper left", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no successful requests", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _pct(p: float) -> str:
    text = f"{p * 100:.2f}".rstrip("0").rstrip(".")
    return text + "%"


def fault_windows(events: pd.DataFrame, end: float) -> list[tuple[float, float, str]]:
    """``(start, end, label)`` for every fault activation in ``events`` (a fault still
    active at the end of the run lasts to ``end``)."""
    if events is None or not len(events):
        return []
    faults = events[events["category"] == "fault"].sort_values("time", kind="stable")
    open_: dict[tuple, list[float]] = {}
    out: list[tuple[float, float, str]] = []
    for t, source, subject, what in zip(faults["time"], faults["source"], faults["subject"],
                                        faults["old"]):
        key = (str(source), str(subject))
        if what == "start":
            open_.setdefault(key, []).append(float(t))
        elif what == "end" and open_.get(key):
            out.append((open_[key].pop(0), float(t), f"{key[0]} {key[1]}"))
    for key, starts in open_.items():
        for s in starts:
            out.append((s, end, f"{key[0]} {key[1]}"))
    return sorted(out)


def timeline(timeseries: pd.DataFrame, events: pd.DataFrame, path: Path,
             title: str = "queue depth per node", end: Optional[float] = None,
             max_legend: int = 12) -> Path:
    """Queue depth per node over time (one line per node), fault windows shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    if timeseries is not None and len(timeseries):
        per_node = (timeseries.groupby(["node", "time"], observed=True, sort=False)["queue_depth"]
                    .first().reset_index())
        nodes = list(dict.fromkeys(str(n) for n in timeseries["node"]))
        for node in nodes:
            rows = per_node[per_node["node"].astype(str) == node].sort_values("time")
            ax.plot(rows["time"], rows["queue_depth"], linewidth=1.0,
                    label=node if len(nodes) <= max_legend else None)
        t_end = float(timeseries["time"].max()) if end is None else end
    else:
        nodes = []
        t_end = end or 1.0
    colors = {}
    palette = ["tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    for start, stop, label in fault_windows(events, t_end):
        kind = label.split(" ", 1)[0]
        first = kind not in colors
        color = colors.setdefault(kind, palette[len(colors) % len(palette)])
        ax.axvspan(start, stop, color=color, alpha=0.15, linewidth=0,
                   label=f"fault: {kind}" if first else None)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("queue depth (requests waiting)")
    ax.set_title(title)
    ax.set_xlim(0, t_end)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(loc="upper left", fontsize="small", ncol=2 if len(labels) > 6 else 1)
    if not nodes:
        ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
