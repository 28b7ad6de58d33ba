"""Reports: one self-contained HTML page and a Markdown summary of a results folder.

:func:`write_report` reads whatever a folder written by ``fedsim run``, ``compare`` or
``sweep`` holds and writes, next to it:

* ``report.html`` - a single file with inline CSS and every plot embedded as a base64 PNG
  ``data:`` URI; it references no URL, script or font, so it can be mailed or archived;
* ``report.md`` - the same numbers as Markdown, images referenced as the PNG files written
  next to it (``latency_percentiles.png``, ``timeline.png``, ...).

Contents: the scenario (name, file, seeds, overrides), the key numbers (requests, success
rate, latency p50 / p90 / p99 / p99.9, retries, retry effectiveness, time to detect and to
recover when there are faults, load imbalance, GPU utilisation, privacy violations - flagged
loudly when not 0), the comparison table of ``compare``, the point table of ``sweep`` and the
plots of :mod:`fedsim.plots`.  Metrics come from :mod:`fedsim.analysis`.

Which outputs are recognised: ``requests.parquet`` (a run), ``comparison.csv`` (a
comparison), ``sweep.parquet`` / ``sweep.csv`` (a sweep); ``summary.json`` and
``scenario.json`` add the run's settings.  A folder with none of them raises
:class:`ReportError`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import analysis

__all__ = ["ReportError", "Report", "detect_outputs", "build_report", "write_report",
           "HTML_NAME", "MD_NAME"]

HTML_NAME = "report.html"
MD_NAME = "report.md"
TABLES = ("requests", "attempts", "timeseries", "events")


class ReportError(ValueError):
    """The folder holds no output fedsim recognises (or is not a folder)."""


# =============================================================================== formatting


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def fmt_ms(v: Any) -> str:
    """Seconds as milliseconds with one decimal, like the CLI's tables (``-`` when missing)."""
    return "-" if _missing(v) else f"{float(v) * 1e3:.1f}"


def fmt_pct(v: Any) -> str:
    """A fraction as a percentage with two decimals, like the CLI's tables."""
    return "-" if _missing(v) else f"{float(v):.2%}"


def fmt_num(v: Any, digits: int = 3) -> str:
    return "-" if _missing(v) else f"{float(v):.{digits}f}"


def fmt_int(v: Any) -> str:
    return "-" if _missing(v) else f"{int(v):,}"


def fmt_s(v: Any) -> str:
    return "-" if _missing(v) else f"{float(v):.2f} s"


def _signed_ms(v: Any) -> str:
    return "-" if _missing(v) else f"{float(v) * 1e3:+.1f}"


def _signed_pp(v: Any) -> str:
    return "-" if _missing(v) else f"{float(v) * 100:+.2f} pp"


def _ci(fmt: Callable[[Any], str], mean: Any, lo: Any, hi: Any) -> str:
    if _missing(mean):
        return "-"
    if _missing(lo) or _missing(hi):
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def _p(v: Any) -> str:
    if _missing(v):
        return "-"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


# =============================================================================== document model


@dataclass
class Block:
    kind: str  # heading | para | list | table | image | alert | note
    text: str = ""
    level: int = 2
    items: list = field(default_factory=list)
    headers: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    left: int = 1  # table: first columns left-aligned
    file: str = ""
    png: bytes = b""


@dataclass
class Report:
    """What :func:`build_report` found: the blocks of the page, the kinds of outputs seen
    (``run`` / ``compare`` / ``sweep``), loud alerts (privacy violations), problems (a part
    that could not be computed), key numbers by name (values as shown) and the PNG files."""

    directory: Path
    title: str
    kinds: list[str]
    blocks: list[Block] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    key_numbers: dict[str, str] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    reuse: tuple[str, ...] = ()

    # ---- building
    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block("heading", text, level=level))

    def para(self, text: str) -> None:
        self.blocks.append(Block("para", text))

    def note(self, text: str) -> None:
        self.blocks.append(Block("note", text))

    def bullets(self, items: Sequence[tuple[str, str]]) -> None:
        self.blocks.append(Block("list", items=list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
        self.blocks.append(Block("table", headers=list(headers), rows=[list(r) for r in rows],
                                 left=left))

    def alert(self, text: str) -> None:
        """A loud message, shown at the top of the page (privacy violations)."""
        self.alerts.append(text)

    def problem(self, what: str, err: BaseException) -> None:
        text = f"{what}: could not be computed ({type(err).__name__}: {err})"
        self.problems.append(text)
        self.note(text)

    def figure(self, fig, name: str, caption: str) -> None:
        """Save ``fig`` (a Figure, or a function making it) as ``<name>.png`` in the folder and
        embed it; a PNG listed in ``reuse`` that exists already is embedded as it is."""
        from . import plots

        if f"{name}.png" in self.reuse and (self.directory / f"{name}.png").is_file():
            self.existing_figure(f"{name}.png", caption)
            return
        if callable(fig):
            fig = fig()
        path = plots.save(fig, self.directory / name, formats=("png",))[0]
        self.blocks.append(Block("image", caption, file=path.name, png=path.read_bytes()))
        self.images.append(path.name)

    def existing_figure(self, file: str, caption: str) -> None:
        path = self.directory / file
        self.blocks.append(Block("image", caption, file=file, png=path.read_bytes()))
        self.images.append(file)

    # ---- rendering
    def write(self) -> tuple[Path, Path]:
        """Write report.html and report.md into the folder; return their paths."""
        html_path = self.directory / HTML_NAME
        md_path = self.directory / MD_NAME
        html_path.write_text(self.to_html(), encoding="utf-8")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return html_path, md_path

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in [Block("alert", a) for a in self.alerts] + self.blocks:
            if b.kind == "heading":
                out += ["#" * (b.level) + " " + b.text, ""]
            elif b.kind == "para":
                out += [b.text, ""]
            elif b.kind == "note":
                out += [f"*{b.text}*", ""]
            elif b.kind == "alert":
                out += [f"> **⚠ {b.text}**", ""]
            elif b.kind == "list":
                out += [f"- **{k}**: {v}" for k, v in b.items] + [""]
            elif b.kind == "table":
                cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append("| " + " | ".join(cell(h) for h in b.headers) + " |")
                out.append("|" + "|".join("---" if i < b.left else "---:"
                                          for i in range(len(b.headers))) + "|")
                out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in b.rows]
                out.append("")
            elif b.kind == "image":
                out += [f"![{b.text}]({b.file})", ""]
        return "\n".join(out).rstrip() + "\n"

    def to_html(self) -> str:
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for b in [Block("alert", a) for a in self.alerts] + self.blocks:
            if b.kind == "heading":
                lvl = min(max(b.level, 2), 4)
                body.append(f"<h{lvl}>{e(b.text)}</h{lvl}>")
            elif b.kind == "para":
                body.append(f"<p>{e(b.text)}</p>")
            elif b.kind == "note":
                body.append(f'<p class="note">{e(b.text)}</p>')
            elif b.kind == "alert":
                body.append(f'<div class="alert" role="alert">&#9888; {e(b.text)}</div>')
            elif b.kind == "list":
                body.append('<dl class="facts">' + "".join(
                    f"<dt>{e(str(k))}</dt><dd>{e(str(v))}</dd>" for k, v in b.items) + "</dl>")
            elif b.kind == "table":
                head = "".join(f'<th class="{"l" if i < b.left else "r"}">{e(str(h))}</th>'
                               for i, h in enumerate(b.headers))
                rows = "".join("<tr>" + "".join(
                    f'<td class="{"l" if i < b.left else "r"}">{e(str(c))}</td>'
                    for i, c in enumerate(r)) + "</tr>" for r in b.rows)
                body.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                            f"<tbody>{rows}</tbody></table></div>")
            elif b.kind == "image":
                data = base64.b64encode(b.png).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{e(b.text)}">'
                            f"<figcaption>{e(b.text)} ({e(b.file)})</figcaption></figure>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{e(self.title)}</title>\n<style>\n{_CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


_CSS = """\
body { margin: 0; background: #f6f7f9; color: #1f2328;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  font-size: 15px; line-height: 1.45; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.6em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; }
th { background: #eef1f4; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
td.l, th.l { text-align: left; }
tbody tr:nth-child(even) { background: #f8f9fa; }
.scroll { overflow-x: auto; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.95em; }
.alert { background: #ffebe9; border: 2px solid #cf222e; color: #82071e; font-weight: 700;
  font-size: 1.15em; padding: 12px 16px; margin: 14px 0; border-radius: 6px; }
.note { color: #57606a; font-style: italic; }
figure { margin: 18px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
figcaption { color: #57606a; font-size: 0.9em; }
"""


# =============================================================================== loading


def detect_outputs(results_dir: Union[str, Path]) -> list[str]:
    """The kinds of fedsim outputs in a folder: any of ``run``, ``compare``, ``sweep``."""
    d = Path(results_dir)
    if not d.is_dir():
        return []
    kinds = []
    if (d / "requests.parquet").is_file():
        kinds.append("run")
    if (d / "comparison.csv").is_file():
        kinds.append("compare")
    if (d / "sweep.parquet").is_file() or (d / "sweep.csv").is_file():
        kinds.append("sweep")
    return kinds


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _load_scenario(d: Path, doc: dict):
    """The scenario of the results: scenario.json, else the summary's file and overrides."""
    from .world import Scenario

    path = d / "scenario.json"
    if path.is_file():
        try:
            return Scenario.model_validate_json(path.read_text())
        except Exception:  # noqa: BLE001 - an unreadable copy: try the file instead
            pass
    file = doc.get("file")
    if not file:
        return None
    from .scenario import load_scenario

    for cand in (Path(file), d / file, d.parent / file):
        if cand.is_file():
            try:
                return load_scenario(cand, overrides=doc.get("overrides") or []).scenario
            except Exception:  # noqa: BLE001
                return None
    return None


def _plain(s: pd.Series) -> pd.Series:
    return s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s


def _seeds_of(df: pd.DataFrame) -> list:
    if "seed" not in df.columns or not len(df):
        return []
    return sorted(pd.unique(_plain(df["seed"])).tolist())


def _one(df: pd.DataFrame, seed) -> pd.DataFrame:
    if seed is None or "seed" not in df.columns:
        return df
    return df[(_plain(df["seed"]) == seed).to_numpy()]


# =============================================================================== sections


def _scenario_section(rep: Report, doc: dict, scenario, kinds: list[str]) -> None:
    rep.heading("Scenario")
    items = [("name", doc.get("scenario") or getattr(scenario, "name", "") or "-"),
             ("file", doc.get("file") or "-"),
             ("command", f"fedsim {doc['command']}" if doc.get("command") else "-")]
    if doc.get("strategy") or scenario is not None:
        strategy = doc.get("strategy") or scenario.router.strategy
        fixes = doc.get("fixes") or (str(scenario.fixes()) if scenario is not None else "-")
        if "compare" not in kinds and "sweep" not in kinds:
            items += [("strategy", strategy), ("fixes", fixes)]
        else:
            items += [("base strategy", strategy)]
    seeds = doc.get("seeds")
    if seeds is None and scenario is not None:
        seeds = [scenario.seed + i for i in range(scenario.replications)]
    items.append(("seeds", ", ".join(str(s) for s in seeds) if seeds else "-"))
    duration = doc.get("duration", getattr(scenario, "duration", None))
    warmup = doc.get("warmup", getattr(scenario, "warmup", None))
    if duration is not None:
        items.append(("duration", f"{duration:g} s simulated"
                      + (f", warm-up {warmup:g} s" if warmup is not None else "")))
    items.append(("overrides", ", ".join(doc.get("overrides") or []) or "none"))
    if doc.get("baseline"):
        items.append(("baseline", doc["baseline"]))
    if doc.get("interrupted"):
        items.append(("interrupted", f"yes; finished seeds {doc.get('finished_seeds', '?')}"))
    rep.bullets(items)


def _mean_ci(per_seed: pd.DataFrame, metric: str, fmt: Callable[[Any], str]) -> str:
    if per_seed is None or metric not in per_seed.columns or len(per_seed) < 2:
        return ""
    s = analysis.replication_summary(per_seed, metric)
    r = s.iloc[0]
    return _ci(fmt, r["mean"], r["ci_low"], r["ci_high"])


def _run_section(rep: Report, d: Path, doc: dict, scenario) -> None:
    tables = {}
    for t in TABLES:
        p = d / f"{t}.parquet"
        tables[t] = pd.read_parquet(p) if p.is_file() else None
    req, att, ts, ev = (tables[t] for t in TABLES)
    seeds = _seeds_of(req)
    multi = len(seeds) > 1
    by = ["seed"] if "seed" in req.columns else None
    warmup = float(doc.get("warmup", getattr(scenario, "warmup", 0.0)) or 0.0)
    duration = doc.get("duration", getattr(scenario, "duration", None))
    interrupted = bool(doc.get("interrupted"))
    nodes_t = analysis.nodes_table(scenario) if scenario is not None else None
    gateways_t = analysis.gateways_table(scenario) if scenario is not None else None
    all_nodes = (list(nodes_t["node"]) if nodes_t is not None else
                 sorted(set(_plain(ts["node"]).astype(str))) if ts is not None and len(ts) else None)

    rep.heading("Key numbers" if "compare" not in rep.kinds else "Key numbers of the run")
    rep.note(f"Over requests that arrived after the {warmup:g} s warm-up"
             + (f"; 'all seeds' pools the {len(seeds)} replications, the last column is the mean "
                "over seeds with its 95% t-interval" if multi else "") + ".")
    rows: list[list[str]] = []

    def add(name: str, value: str, across: str = "") -> None:
        rows.append([name, value, across] if multi else [name, value])
        rep.key_numbers[name] = value

    per_seed = None
    # ---- privacy first: it is the one number that must be 0
    violations = None
    if scenario is not None:
        try:
            reg = analysis.regions_table(scenario)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", analysis.PrivacyViolationWarning)
                pv = analysis.report_privacy_violations(req, dict(zip(reg["region"], reg["privacy"])),
                                                        by=by)
            violations = int(pv["privacy_violations"].sum())
            served = int(pv["served"].sum())
            if violations:
                rep.alert(f"PRIVACY VIOLATIONS: {violations} of {served} served requests went to "
                          "a region below their privacy level (must be 0). "
                          "See fedsim.analysis.privacy_violations.")
        except Exception as err:  # noqa: BLE001
            rep.problem("privacy check", err)
    # ---- outcomes and latency
    try:
        out = analysis.outcomes(req, att, by=by, warmup=warmup,
                                duration=None if interrupted or duration is None else float(duration))
        lat = analysis.latency_percentiles(req, warmup=warmup, percentiles=(50, 90, 99, 99.9))
        lat_seed = (analysis.latency_percentiles(req, by="seed", warmup=warmup,
                                                 percentiles=(50, 90, 99, 99.9)) if by else lat)
        per_seed = out.merge(lat_seed.drop(columns=["count", "max", "mean"]), on=by) if by else \
            pd.concat([out, lat_seed.drop(columns=["count", "max", "mean"])], axis=1)
        total = out[["requests", "succeeded", "failed", "in_flight", "retried",
                     "retried_succeeded"]].sum()
        retries = float((out["retries_per_request"].fillna(0) * out["requests"]).sum())
        l0 = lat.iloc[0]
        add("requests", fmt_int(total["requests"]))
        add("succeeded / failed / in flight",
            " / ".join(fmt_int(total[k]) for k in ("succeeded", "failed", "in_flight")))
        add("success rate", fmt_pct(_ratio(total["succeeded"], total["succeeded"] + total["failed"])),
            _mean_ci(per_seed, "success_rate", fmt_pct))
        for p, label in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9")):
            add(f"latency {label} (ms)", fmt_ms(l0[p]), _mean_ci(per_seed, p, fmt_ms))
        add("retries per request", fmt_num(_ratio(retries, total["requests"])),
            _mean_ci(per_seed, "retries_per_request", fmt_num))
        add("retry effectiveness (retried requests that succeeded)",
            fmt_pct(_ratio(total["retried_succeeded"], total["retried"]))
            + f" of {fmt_int(total['retried'])}",
            _mean_ci(per_seed, "retry_effectiveness", fmt_pct))
        if not interrupted and duration is not None and float(duration) > warmup:
            span = (float(duration) - warmup) * max(len(seeds), 1)  # simulated s, all runs
            add("goodput (successes/s per run)", fmt_num(_ratio(total["succeeded"], span), 2),
                _mean_ci(per_seed, "goodput", lambda v: fmt_num(v, 2)))
    except Exception as err:  # noqa: BLE001
        rep.problem("outcomes and latency", err)
    # ---- faults: detection and recovery
    fault_rows = []
    try:
        if ev is not None and len(ev) and (_plain(ev["category"]) == "fault").any():
            det, rec = [], []
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for s in (seeds or [None]):
                    e_s, a_s = _one(ev, s), (_one(att, s) if att is not None else None)
                    det.append(analysis.detection_times(e_s, a_s, nodes=nodes_t, gateways=gateways_t)
                               .assign(_seed=s))
                    rec.append(analysis.recovery_times(e_s, a_s, nodes=nodes_t, gateways=gateways_t)
                               .assign(_seed=s))
            det_t, rec_t = pd.concat(det, ignore_index=True), pd.concat(rec, ignore_index=True)
            skipped = sorted({str(w.message).split(":", 1)[-1].strip()[:200] for w in caught
                              if "faults skipped" in str(w.message)})
            if len(det_t):
                ttd = det_t["time_to_detect"].dropna()
                add("time to detect a fault (mean / max)",
                    f"{_mean_max(ttd)} ({len(ttd)} of {len(det_t)} fault x node x gateway detected)")
                ended = rec_t[rec_t["end"].notna()]
                ttr = ended["time_to_recover"].dropna()
                add("time to recover, back in rotation (mean / max)",
                    f"{_mean_max(ttr)} ({len(ended) - len(ttr)} of {len(ended)} never back)")
                cr = rec_t["circuit_recovery"].dropna()
                if len(cr):
                    add("circuit recovery, open to closed (mean)", fmt_s(cr.mean()))
                for kind, sub in det_t.groupby("kind", sort=True):
                    r_sub = rec_t[rec_t["kind"] == kind]
                    t1 = sub["time_to_detect"].dropna()
                    t2 = r_sub.loc[r_sub["end"].notna(), "time_to_recover"]
                    faults = len(sub.drop_duplicates(["_seed", "fault"]))
                    fault_rows.append([str(kind), fmt_int(faults), fmt_int(len(sub)),
                                       f"{len(t1)} of {len(sub)}", fmt_s(t1.mean()),
                                       fmt_s(t1.max()), fmt_s(t2.mean()),
                                       f"{int(t2.isna().sum())} of {len(t2)}"])
            if skipped:
                rep.note("Some faults could not be related to nodes: " + "; ".join(skipped))
    except Exception as err:  # noqa: BLE001
        rep.problem("fault detection and recovery", err)
    # ---- load and GPUs
    try:
        li = analysis.load_imbalance(req, by="node", all_nodes=all_nodes, group_by=by, warmup=warmup)
        if len(li):
            add("load imbalance: CV of requests served per node",
                fmt_num(li["cv"].mean()) + (" (mean over seeds)" if multi else ""),
                _mean_ci(li, "cv", fmt_num))
            add("load imbalance: busiest node / mean", fmt_num(li["max_over_mean"].mean(), 2),
                _mean_ci(li, "max_over_mean", lambda v: fmt_num(v, 2)))
    except Exception as err:  # noqa: BLE001
        rep.problem("load imbalance", err)
    gpu = None
    try:
        if ts is not None and len(ts):
            gpu = analysis.gpu_utilization(ts, by=[*(by or []), "node"], warmup=warmup)
            per = gpu.groupby(by)["gpu_utilization"].mean().reset_index() if by else None
            busiest = gpu.groupby("node")["gpu_utilization"].mean().sort_values()
            add("GPU utilisation (mean over nodes)", fmt_pct(gpu["gpu_utilization"].mean()),
                _mean_ci(per, "gpu_utilization", fmt_pct) if per is not None else "")
            add("GPU utilisation of the busiest node",
                f"{fmt_pct(busiest.iloc[-1])} ({busiest.index[-1]})")
    except Exception as err:  # noqa: BLE001
        rep.problem("GPU utilisation", err)
    if scenario is None:
        add("privacy violations", "not checked (scenario not available)")
    elif violations is not None:
        add("privacy violations", ("0" if violations == 0 else f"{violations}  ⚠ MUST BE 0"))
    rep.table(["metric", "all seeds" if multi else "value",
               *(["mean over seeds [95% CI]"] if multi else [])], rows)

    if per_seed is not None and multi:
        rep.heading("Per seed", 3)
        rep.table(["seed", "requests", "success", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
                   "retries/req", "retry eff."],
                  [[_seed_text(r["seed"]), fmt_int(r["requests"]), fmt_pct(r["success_rate"]),
                    fmt_ms(r["p50"]), fmt_ms(r["p90"]), fmt_ms(r["p99"]), fmt_ms(r["p99_9"]),
                    fmt_num(r["retries_per_request"]), fmt_pct(r["retry_effectiveness"])]
                   for _, r in per_seed.iterrows()])
    if fault_rows:
        rep.heading("Faults: detection and recovery", 3)
        rep.note("Per fault kind over every (fault, affected node, gateway) - each gateway has its "
                 "own view. Detected = the gateway stops routing to the node (Unhealthy or circuit "
                 "Open); back = its first successful attempt on the node after the fault ended.")
        rep.table(["fault kind", "faults", "node x gateway", "detected", "detect mean",
                   "detect max", "recover mean", "never back"], fault_rows)
    try:
        errs = analysis.error_breakdown(req, warmup=warmup)
        if len(errs):
            rep.heading("Errors of failed requests", 3)
            rep.table(["error", "count", "share of failed", "share of requests"],
                      [[str(r["error"]), fmt_int(r["count"]), fmt_pct(r["share_of_failed"]),
                        fmt_pct(r["share_of_requests"])] for _, r in errs.iterrows()])
    except Exception as err:  # noqa: BLE001
        rep.problem("error breakdown", err)
    if gpu is not None and len(gpu):
        rep.heading("Nodes", 3)
        nodes_view = gpu.groupby("node").agg(gpu=("gpu_utilization", "mean"),
                                             gpu_max=("gpu_utilization_max", "max"),
                                             queue=("queue_depth_mean", "mean"),
                                             up=("up_share", "mean")).reset_index()
        served = (_plain(req.loc[(req["arrival"] >= warmup).to_numpy()
                                 & (_plain(req["status"]) == "success").to_numpy(), "node"])
                  .astype(str).value_counts())
        rep.table(["node", "served requests", "GPU utilisation", "peak", "mean queue", "up"],
                  [[str(r["node"]), fmt_int(served.get(str(r["node"]), 0)), fmt_pct(r["gpu"]),
                    fmt_pct(r["gpu_max"]), fmt_num(r["queue"], 2), fmt_pct(r["up"])]
                   for _, r in nodes_view.iterrows()])

    # ---- plots
    from . import plots

    rep.heading("Plots")
    name = doc.get("scenario") or getattr(scenario, "name", "")
    prefix = f"{name}: " if name else ""
    first = seeds[0] if seeds else None
    try:
        rep.figure(lambda: plots.latency_percentile_plot(req, warmup=warmup), "latency_percentiles",
                   "Latency by percentile" + (" (mean over seeds, shaded 95% CI)" if multi else ""))
        rep.figure(lambda: plots.cdf_plot(req, variant_col="seed" if multi else None, warmup=warmup,
                                  title=f"{prefix}CDF of end-to-end latency"
                                        + (" per seed" if multi else "")),
                   "latency_cdf", "CDF of latency" + (" per seed" if multi else ""))
        rep.figure(lambda: plots.ccdf_plot(req, variant_col="seed" if multi else None, warmup=warmup,
                                   title=f"{prefix}CCDF of end-to-end latency (tail)"
                                         + (" per seed" if multi else "")),
                   "latency_ccdf", "CCDF of latency (the tail)" + (" per seed" if multi else ""))
    except Exception as err:  # noqa: BLE001
        rep.problem("latency plots", err)
    if ts is not None and ev is not None:
        try:
            end = None
            reps = doc.get("replications") or []
            for r in reps:
                if r.get("seed") == first or len(reps) == 1:
                    end = r.get("simulated_seconds") or None
                    break
            rep.figure(lambda: plots.timeline_plot(ts, ev, att, seed=first, end=end or duration,
                                           title=f"{prefix}timeline"
                                                 + (f" (seed {first})" if first is not None else "")),
                       "timeline", "Timeline: queue depth, routed share, health and circuit state "
                       "per node, faults shaded" + (f" (seed {first})" if first is not None else ""))
            rep.figure(lambda: plots.node_heatmap(ts, "gpu_utilization", seed=first), "gpu_heatmap",
                       "GPU utilisation per node over time"
                       + (f" (seed {first})" if first is not None else ""))
        except Exception as err:  # noqa: BLE001
            rep.problem("timeline plots", err)


def _mean_max(v: pd.Series) -> str:
    """``mean / max`` of durations in seconds (``-`` when there are none)."""
    return f"{fmt_s(v.mean())} / {fmt_s(v.max())}"


def _seed_text(v: Any) -> str:
    try:
        return str(int(v)) if float(v) == int(v) else str(v)
    except (TypeError, ValueError):
        return str(v)


def _ratio(a: Any, b: Any) -> float:
    try:
        return float(a) / float(b) if float(b) else math.nan
    except (TypeError, ValueError):
        return math.nan


def _per_seed_runs(doc: dict) -> pd.DataFrame:
    rows = []
    for v in doc.get("variants") or []:
        for r in v.get("runs") or []:
            if r.get("interrupted"):
                continue
            rows.append({"variant": v["variant"], **{k: r.get(k) for k in (
                "seed", "requests", "success_rate", "latency_p50", "latency_p90", "latency_p99",
                "latency_p999", "retries_per_request")}})
    df = pd.DataFrame(rows)
    for c in df.columns:
        if c != "variant":
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _paired(runs: pd.DataFrame, metric: str, baseline: str) -> Optional[pd.DataFrame]:
    """Paired comparison over the seeds every variant finished; None without a baseline."""
    if not len(runs) or baseline not in set(runs["variant"]):
        return None
    sets = [set(g["seed"]) for _, g in runs.groupby("variant", sort=False)]
    common = set.intersection(*sets) if sets else set()
    sub = runs[runs["seed"].isin(common)]
    if not len(sub):
        return None
    return analysis.paired_comparison(sub, metric, "variant", baseline)


def _compare_section(rep: Report, d: Path, doc: dict) -> None:
    frame = pd.read_csv(d / "comparison.csv")
    runs = _per_seed_runs(doc)
    baseline = doc.get("baseline") or (str(frame["variant"].iloc[0]) if len(frame) else None)
    paired = {}
    for m in ("latency_p50", "latency_p99", "latency_p999", "success_rate"):
        try:
            paired[m] = _paired(runs, m, baseline) if baseline is not None else None
        except Exception as err:  # noqa: BLE001
            rep.problem(f"paired comparison of {m}", err)
            paired[m] = None

    def diff(m: str, variant: str, fmt) -> tuple[str, str]:
        t = paired.get(m)
        if variant == baseline:
            return "baseline", ""
        if t is None or not len(t[t["variant"] == variant]):
            return "-", ""
        r = t[t["variant"] == variant].iloc[0]
        if _missing(r["ci_low"]):
            return fmt(r["mean_diff"]) + (" (1 seed: no CI)" if r["n"] <= 1 else ""), _p(r["p_value"])
        return _ci(fmt, r["mean_diff"], r["ci_low"], r["ci_high"]), _p(r["p_value"])

    rep.heading("Comparison")
    n_seeds = len(set(runs["seed"])) if len(runs) else 0
    rep.note(f"Every variant ran on the same seeds (common random numbers); differences are "
             f"paired per seed against the baseline '{baseline}': mean of (variant - baseline) "
             f"over {n_seeds} seed{'s' if n_seeds != 1 else ''} with its 95% t-interval and the "
             "paired t-test p-value. Percentiles pool the seeds' requests after the warm-up.")
    rows = []
    for _, r in frame.iterrows():
        v = str(r["variant"])
        d99, p99 = diff("latency_p99", v, _signed_ms)
        d50, _ = diff("latency_p50", v, _signed_ms)
        dsr, psr = diff("success_rate", v, _signed_pp)
        rows.append([v, str(r.get("strategy", "")), str(r.get("fixes", "")), fmt_int(r.get("seeds")),
                     fmt_int(r.get("requests")), fmt_pct(r.get("success_rate")),
                     fmt_ms(r.get("latency_p50")), fmt_ms(r.get("latency_p90")),
                     fmt_ms(r.get("latency_p99")), fmt_ms(r.get("latency_p999")),
                     fmt_num(r.get("retries_per_request")), d50, d99, p99, dsr, psr])
        rep.key_numbers[f"{v} p99 (ms)"] = fmt_ms(r.get("latency_p99"))
    rep.table(["variant", "strategy", "fixes", "seeds", "requests", "success", "p50 ms", "p90 ms",
               "p99 ms", "p99.9 ms", "retries/req", "Δp50 ms [95% CI]", "Δp99 ms [95% CI]",
               "p (Δp99)", "Δsuccess [95% CI]", "p (Δsuccess)"], rows, left=3)
    t99 = paired.get("latency_p99")
    if n_seeds < 2:
        rep.para("With one seed there is no interval and no test: the differences above are one "
                 "run's luck as much as the variants'; add replications to compare.")
    elif t99 is not None and len(t99):
        better = t99[(t99["significant"]) & (t99["mean_diff"] < 0)]
        worse = t99[(t99["significant"]) & (t99["mean_diff"] > 0)]
        parts = []
        if len(better):
            parts.append("lower p99 than the baseline (significant at 5%): "
                         + ", ".join(f"{r['variant']} ({_signed_ms(r['mean_diff'])} ms)"
                                     for _, r in better.iterrows()))
        if len(worse):
            parts.append("higher p99 (significant at 5%): "
                         + ", ".join(f"{r['variant']} ({_signed_ms(r['mean_diff'])} ms)"
                                     for _, r in worse.iterrows()))
        rep.para("; ".join(parts).capitalize() + "." if parts else
                 "No variant's p99 differs significantly from the baseline at 5% "
                 f"(paired t-test over {n_seeds} seed{'s' if n_seeds != 1 else ''}).")

    from . import plots

    rep.heading("Plots" if "run" not in rep.kinds else "Comparison plots")
    lat_path = d / "latencies.parquet"
    try:
        if lat_path.is_file():
            lat = pd.read_parquet(lat_path)
            multi = lat["seed"].nunique() > 1 if len(lat) else False
            rep.figure(lambda: plots.latency_percentile_plot(lat, variant_col="variant"),
                       "latency_percentiles", "Latency by percentile per variant"
                       + (" (mean over seeds, shaded 95% CI)" if multi else ""))
            rep.figure(lambda: plots.cdf_plot(lat, variant_col="variant"), "latency_cdf",
                       "CDF of latency per variant (seeds pooled)")
            rep.figure(lambda: plots.ccdf_plot(lat, variant_col="variant"), "latency_ccdf",
                       "CCDF of latency per variant (the tail, seeds pooled)")
        elif (d / "latency_percentiles.png").is_file():
            rep.existing_figure("latency_percentiles.png", "Latency by percentile per variant")
    except Exception as err:  # noqa: BLE001
        rep.problem("latency plots", err)
    try:
        for m, name, caption in (("latency_p99", "comparison_p99", "Paired difference in p99"),
                                 ("success_rate", "comparison_success_rate",
                                  "Paired difference in success rate")):
            t = paired.get(m)
            if t is not None and len(t):
                rep.figure(lambda: plots.comparison_bars(t, metric=m), name,
                           f"{caption} vs {baseline} (95% CI across seeds)")
    except Exception as err:  # noqa: BLE001
        rep.problem("comparison plots", err)


def _sweep_section(rep: Report, d: Path, doc: dict) -> None:
    from . import plots

    frame = (pd.read_parquet(d / "sweep.parquet") if (d / "sweep.parquet").is_file()
             else pd.read_csv(d / "sweep.csv"))
    params: list[str] = []
    for p in doc.get("points") or []:
        for k in (p.get("params") or {}):
            if str(k) in frame.columns and str(k) not in params:
                params.append(str(k))
    if not params and "point" in frame.columns and "seed" in frame.columns:
        cols = list(frame.columns)
        params = cols[cols.index("point") + 1:cols.index("seed")]
    err = frame["error"].fillna("").astype(str) if "error" in frame.columns else \
        pd.Series([""] * len(frame), index=frame.index)
    ok = frame[(err == "").to_numpy()]
    rep.heading("Sweep")
    n_seeds = ok["seed"].nunique() if "seed" in ok.columns and len(ok) else 0
    rep.note(f"{frame['point'].nunique() if 'point' in frame.columns else len(frame)} points; "
             f"{len(ok)} of {len(frame)} runs finished without error. Values are means over "
             f"seeds with their 95% t-interval (when a point has two or more seeds); latencies "
             "are each run's percentiles after the warm-up.")
    metrics = [m for m in ("success_rate", "latency_p50", "latency_p90", "latency_p99",
                           "latency_p999", "retries_per_request") if m in ok.columns]
    summary = analysis.replication_summary(ok, metrics, by="point") if len(ok) else None
    fmts = {"success_rate": fmt_pct, "retries_per_request": fmt_num}
    rows = []
    order = list(dict.fromkeys(frame["point"])) if "point" in frame.columns else []
    for point in order:
        first = frame[frame["point"] == point].iloc[0]
        runs = ok[ok["point"] == point]
        row = [*([] if params else [str(point)]), *[str(first[p]) for p in params],
               f"{len(runs)} of {int((frame['point'] == point).sum())}",
               fmt_int(pd.to_numeric(runs["requests"], errors="coerce").sum()) if len(runs) else "-"]
        for m in metrics:
            s = ([] if summary is None else
                 summary[(summary["point"] == point) & (summary["metric"] == m)])
            if len(s):
                r = s.iloc[0]
                row.append(_ci(fmts.get(m, fmt_ms), r["mean"], r["ci_low"], r["ci_high"]))
            else:
                row.append("-")
        rows.append(row)
    labels = {"success_rate": "success", "latency_p50": "p50 ms", "latency_p90": "p90 ms",
              "latency_p99": "p99 ms", "latency_p999": "p99.9 ms",
              "retries_per_request": "retries/req"}
    rep.table([*([] if params else ["point"]), *params, "runs ok", "requests",
               *[labels[m] for m in metrics]], rows, left=max(len(params), 1))
    failed = frame[(err != "").to_numpy()]
    if len(failed):
        rep.heading("Failed runs", 3)
        rep.table(["point", "seed", "error"],
                  [[str(r["point"]), _seed_text(r.get("seed", "")), str(r["error"])]
                   for _, r in failed.iterrows()], left=3)
    if not len(ok) or not params:
        return
    load, variant_cols = _choose_load(ok, params)
    data = ok.copy()
    variant = None
    if variant_cols:
        data["variant"] = [", ".join(f"{c}={data.at[i, c]}" for c in variant_cols)
                           for i in data.index]
        variant = "variant"
    rep.heading("Plots" if len(rep.kinds) == 1 else "Sweep plots")
    try:
        rep.figure(lambda: plots.percentile_vs_load_plot(
            data, load, ("latency_p50", "latency_p99"), variant_col=variant,
            title=f"Latency p50 and p99 vs {load}"
                  + ("; mean over seeds, 95% CI bars" if n_seeds > 1 else "")),
            "sweep_percentiles", f"Latency percentiles across the sweep by {load}")
    except Exception as err:  # noqa: BLE001
        rep.problem("sweep plot", err)


def _choose_load(frame: pd.DataFrame, params: list[str]) -> tuple[str, list[str]]:
    """The x axis of a sweep plot: a numeric parameter (one with 'rate' or 'load' in its name
    first), else the first parameter; the others make the variants."""
    from .plots import numeric_values

    numeric = [p for p in params if frame[p].nunique() > 1
               and numeric_values(list(_plain(frame[p]))) is not None]
    numeric.sort(key=lambda p: 0 if ("rate" in p or "load" in p) else 1)
    varying = [p for p in params if frame[p].astype(str).nunique() > 1] or params
    load = numeric[0] if numeric else varying[0]
    return load, [p for p in varying if p != load]


# =============================================================================== entry points


def build_report(results_dir: Union[str, Path], reuse: Sequence[str] = ()) -> Report:
    """Read a results folder and assemble the report (the PNG plots are written into the
    folder as they are made); :func:`write_report` also writes the HTML and Markdown.

    ``reuse``: PNG file names in the folder that are already the report's figure of that name
    (the CLI passes the plots it has just drawn) and are embedded instead of redrawn."""
    d = Path(results_dir)
    if not d.is_dir():
        raise ReportError(f"{d}: not a directory")
    kinds = detect_outputs(d)
    if not kinds:
        raise ReportError(f"{d}: no fedsim outputs found (expected requests.parquet from "
                          "`fedsim run`, comparison.csv from `fedsim compare` or sweep.csv / "
                          "sweep.parquet from `fedsim sweep`)")
    doc = _read_json(d / "summary.json")
    scenario = _load_scenario(d, doc)
    name = doc.get("scenario") or getattr(scenario, "name", "") or d.name
    what = {"run": "run", "compare": "comparison", "sweep": "sweep"}
    title = f"fedsim {' + '.join(what[k] for k in kinds)}: {name}"
    rep = Report(d, title, kinds, reuse=tuple(reuse))
    _scenario_section(rep, doc, scenario, kinds)
    if "run" in kinds:
        _run_section(rep, d, doc, scenario)
    if "compare" in kinds:
        try:
            _compare_section(rep, d, doc)
        except Exception as err:  # noqa: BLE001
            rep.problem("comparison", err)
    if "sweep" in kinds:
        try:
            _sweep_section(rep, d, doc)
        except Exception as err:  # noqa: BLE001
            rep.problem("sweep", err)
    files = sorted(p.name for p in d.iterdir() if p.is_file() and p.name not in (HTML_NAME, MD_NAME))
    rep.heading("Files")
    rep.para(", ".join(files))
    return rep


def write_report(results_dir: Union[str, Path]) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``results_dir`` (plus the
    PNG plots the Markdown references); return ``(html_path, md_path)``.  Raises
    :class:`ReportError` when the folder holds no recognisable fedsim output."""
    return build_report(results_dir).write()
