"""fedsim.report: report.html is self-contained (no URL, script or font; plots as data: URIs),
report.md references the PNG files next to it, and both carry the scenario and the key numbers
- checked against summary.json, comparison.csv and fedsim.analysis - for run, compare and
sweep folders; privacy violations are flagged loudly; and ``fedsim report`` exits 0 / 2."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fedsim import analysis as A
from fedsim.cli import main
from fedsim.report import ReportError, build_report, fmt_ms, fmt_num, fmt_pct, write_report
from fedsim.runner import Variant, compare, run_replications, write_compare, write_run
from fedsim.world import Scenario

MODELS = [{"model": "llm", "capabilities": ["generate"]}]
IMAGE = r"!\[.*?\]\(([^)\s]+\.png)\)"  # a Markdown image (captions may hold brackets)


def scenario(**extra) -> Scenario:
    spec = dict(
        name="reporttest", duration=24.0, warmup=2.0, seed=3, replications=2,
        regions=[{"id": "eu", "privacy": "confidential"}, {"id": "us", "privacy": "public"}],
        network={"rtt": {"eu": {"us": 0.02}}},
        gateways=[{"name": "gw-eu", "region": "eu"}, {"name": "gw-us", "region": "us"}],
        nodes=[{"name": "eu", "region": "eu", "count": 2, "gpus": 2, "models": MODELS},
               {"name": "us", "region": "us", "count": 2, "gpus": 2, "models": MODELS}],
        router={"strategy": "random", "fixes": ["active_probes"],
                "health": {"check_interval": 1.0}, "gateway": {"max_retries": 1}},
        workloads=[{"arrival": {"kind": "poisson", "rate": 25},
                    "privacy": {"public": 0.7, "internal": 0.3}}],
        faults=[{"kind": "crash", "target": "eu-0", "at": 8.0, "duration": 5.0},
                {"kind": "region_outage", "target": "us", "at": 16.0, "duration": 3.0}])
    return Scenario(**{**spec, **extra})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    sc = scenario()
    outcome = run_replications(sc, [3, 4])
    write_run(out, outcome, {"command": "run", "file": "reporttest.yaml",
                             "overrides": ["workloads[0].arrival.rate=25/s"], "seed_option": None,
                             "out": str(out)})
    return out


@pytest.fixture(scope="module")
def run_report(run_dir):
    html_path, md_path = write_report(run_dir)
    return html_path.read_text(), md_path.read_text()


def assert_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    for tag in ("<script", "<link", "<iframe", "<object", "<embed", "@import", "url(", "@font-face"):
        assert tag not in page.lower(), tag
    # every src / href is an inline data: URI
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs), refs[:3]
    for r in refs:
        assert base64.b64decode(r.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def md_row(md: str, name: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is ``name``."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r}")


def html_row(page: str, name: str) -> list[str]:
    m = re.search(r"<tr><td class=\"l\">" + re.escape(name) + r"</td>(.*?)</tr>", page)
    assert m, name
    return [name] + re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))


# =========================================================================== run


def test_run_report_files_and_self_contained(run_dir, run_report):
    page, md = run_report
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    assert_self_contained(page)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    # the Markdown references PNG files that exist next to it, the HTML embeds the same plots
    images = re.findall(IMAGE, md)
    assert images == ["latency_percentiles.png", "latency_cdf.png", "latency_ccdf.png",
                      "timeline.png", "gpu_heatmap.png"]
    for name in images:
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name})</figcaption>" in page
    assert page.count('<img src="data:image/png;base64,') == len(images)
    assert "http" not in md


def test_run_report_scenario_and_key_numbers_match_summary(run_dir, run_report):
    page, md = run_report
    doc = json.loads((run_dir / "summary.json").read_text())
    agg = doc["aggregate"]
    assert md.startswith("# fedsim run: reporttest\n")
    for text in ("**name**: reporttest", "**file**: reporttest.yaml", "**seeds**: 3, 4",
                 "**overrides**: workloads[0].arrival.rate=25/s", "**strategy**: random",
                 "**fixes**: active_probes", "warm-up 2 s"):
        assert text in md
    assert "<dt>seeds</dt><dd>3, 4</dd>" in page
    expected = {
        "requests": f"{agg['requests']:,}",
        "success rate": fmt_pct(agg["success_rate"]),
        "latency p50 (ms)": fmt_ms(agg["latency_p50"]),
        "latency p90 (ms)": fmt_ms(agg["latency_p90"]),
        "latency p99 (ms)": fmt_ms(agg["latency_p99"]),
        "latency p99.9 (ms)": fmt_ms(agg["latency_p999"]),
        "retries per request": fmt_num(agg["retries_per_request"]),
        "privacy violations": "0",
    }
    for name, value in expected.items():
        assert md_row(md, name)[1] == value, name
        assert html_row(page, name)[1] == value, name
    # the last column: mean over seeds with its interval, from analysis.replication_summary
    per_seed = pd.DataFrame(doc["replications"])
    s = A.replication_summary(per_seed, "latency_p99").iloc[0]
    assert md_row(md, "latency p99 (ms)")[2] == (
        f"{fmt_ms(s['mean'])} [{fmt_ms(s['ci_low'])}, {fmt_ms(s['ci_high'])}]")
    # per-seed rows agree with the per-seed summaries
    for rep in doc["replications"]:
        row = md_row(md, str(rep["seed"]))
        assert row[1:7] == [f"{rep['requests']:,}", fmt_pct(rep["success_rate"]),
                            fmt_ms(rep["latency_p50"]), fmt_ms(rep["latency_p90"]),
                            fmt_ms(rep["latency_p99"]), fmt_ms(rep["latency_p999"])]


def test_run_report_fault_load_and_gpu_numbers(run_dir, run_report):
    page, md = run_report
    req = pd.read_parquet(run_dir / "requests.parquet")
    att = pd.read_parquet(run_dir / "attempts.parquet")
    ev = pd.read_parquet(run_dir / "events.parquet")
    ts = pd.read_parquet(run_dir / "timeseries.parquet")
    sc = scenario()
    nodes, gws = A.nodes_table(sc), A.gateways_table(sc)
    det = pd.concat([A.detection_times(ev[ev["seed"] == s], att[att["seed"] == s], nodes=nodes,
                                       gateways=gws) for s in (3, 4)])
    ttd = det["time_to_detect"].dropna()
    assert len(ttd) > 0
    cell = md_row(md, "time to detect a fault (mean / max)")[1]
    assert cell.startswith(f"{ttd.mean():.2f} s / {ttd.max():.2f} s")
    assert f"({len(ttd)} of {len(det)} fault x node x gateway detected)" in cell
    assert md_row(md, "time to recover, back in rotation (mean / max)")[1].endswith("never back)")
    assert md_row(md, "crash")[1:4] == ["2", "4", "4 of 4"]  # 1 crash x 2 seeds x 2 gateways
    assert md_row(md, "region_outage")[1:3] == ["2", "8"]  # 2 nodes x 2 gateways x 2 seeds
    li = A.load_imbalance(req, all_nodes=nodes["node"], group_by="seed", warmup=2.0)
    assert md_row(md, "load imbalance: CV of requests served per node")[1] == (
        f"{fmt_num(li['cv'].mean())} (mean over seeds)")
    gpu = A.gpu_utilization(ts, by=["seed", "node"], warmup=2.0)
    assert md_row(md, "GPU utilisation (mean over nodes)")[1] == fmt_pct(gpu["gpu_utilization"].mean())
    assert html_row(page, "GPU utilisation (mean over nodes)")[1] == fmt_pct(gpu["gpu_utilization"].mean())
    out = A.outcomes(req, att, by="seed", warmup=2.0)
    eff = out["retried_succeeded"].sum() / out["retried"].sum()
    assert md_row(md, "retry effectiveness (retried requests that succeeded)")[1].startswith(fmt_pct(eff))
    assert "PRIVACY" not in md and 'class="alert"' not in page


def test_privacy_violation_is_flagged_loudly(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    for f in bad.glob("report.*"):
        f.unlink()
    req = pd.read_parquet(bad / "requests.parquet")
    privacy = req["privacy"].astype(object)
    served_by_us = ((req["region"].astype(object) == "us") & (req["status"] == "success")).to_numpy()
    idx = req.index[served_by_us][:3]
    privacy.loc[idx] = "confidential"  # us is a public region
    req["privacy"] = privacy
    req.to_parquet(bad / "requests.parquet", index=False)
    rep = build_report(bad)
    assert len(rep.alerts) == 1 and rep.alerts[0].startswith("PRIVACY VIOLATIONS: 3 of ")
    html_path, md_path = rep.write()
    page, md = html_path.read_text(), md_path.read_text()
    # at the top of both, and in the key numbers
    assert md.splitlines()[2].startswith("> **⚠ PRIVACY VIOLATIONS: 3 of ")
    assert page.index('class="alert"') < page.index("<h2>Scenario</h2>")
    assert md_row(md, "privacy violations")[1] == "3  ⚠ MUST BE 0"
    assert main(["report", str(bad)]) == 0
    assert "fedsim report: PRIVACY VIOLATIONS: 3 of" in capsys.readouterr().err


# =========================================================================== compare


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "cmp"
    sc = scenario(duration=16.0, faults=[])
    variants = [Variant("random", "random", None), Variant("least_latency", "least_latency", None)]
    doc = compare(sc, variants, [3, 4, 5])
    write_compare(out, doc, {"command": "compare", "scenario": sc.name, "file": "cmp.yaml",
                             "overrides": [], "seeds": [3, 4, 5], "out": str(out),
                             "baseline": "random"}, sc)
    return out


def test_compare_report_has_the_comparison_table(compare_dir):
    html_path, md_path = write_report(compare_dir)
    page, md = html_path.read_text(), md_path.read_text()
    assert_self_contained(page)
    csv = pd.read_csv(compare_dir / "comparison.csv")
    assert md.startswith("# fedsim comparison: reporttest\n")
    assert "**baseline**: random" in md
    for _, r in csv.iterrows():
        row = md_row(md, r["variant"])
        assert row[1:3] == [r["strategy"], r["fixes"]]
        assert row[4:10] == [f"{int(r['requests']):,}", fmt_pct(r["success_rate"]),
                             fmt_ms(r["latency_p50"]), fmt_ms(r["latency_p90"]),
                             fmt_ms(r["latency_p99"]), fmt_ms(r["latency_p999"])]
        assert html_row(page, r["variant"])[8] == fmt_ms(r["latency_p99"])
    # the paired difference of the CLI's comparison.csv, with its interval
    r = csv.iloc[1]
    sign = lambda v: f"{v * 1e3:+.1f}"  # noqa: E731
    assert md_row(md, "least_latency")[12] == (
        f"{sign(r['p99_diff_mean'])} [{sign(r['p99_diff_ci_low'])}, {sign(r['p99_diff_ci_high'])}]")
    assert md_row(md, "random")[12] == "baseline"
    images = re.findall(IMAGE, md)
    assert images == ["latency_percentiles.png", "latency_cdf.png", "latency_ccdf.png",
                      "comparison_p99.png", "comparison_success_rate.png"]
    assert all((compare_dir / i).is_file() for i in images)


# =========================================================================== sweep


def test_sweep_report(tmp_path):
    d = tmp_path / "sweep"
    d.mkdir()
    rows = []
    for strategy in ("random", "least_latency"):
        for rate in (10, 20):
            for seed in (1, 2):
                rows.append({"point": f"router.strategy={strategy},rate={rate}",
                             "router.strategy": strategy, "workloads[0].arrival.rate": rate,
                             "seed": seed, "requests": 100 * rate, "succeeded": 100 * rate,
                             "failed": 0, "in_flight": 0, "success_rate": 1.0,
                             "latency_mean": 0.1, "latency_p50": 0.01 * rate + 0.001 * seed,
                             "latency_p90": 0.02 * rate, "latency_p99": 0.05 * rate + 0.002 * seed,
                             "latency_p999": 0.08 * rate, "retries_per_request": 0.0,
                             "simulated_seconds": 10.0, "interrupted": False, "error": ""})
    rows[-1].update(error="OverflowError: boom", latency_p50=None, latency_p99=None)
    pd.DataFrame(rows).to_csv(d / "sweep.csv", index=False)
    points = [{"name": f"router.strategy={s},rate={r}",
               "params": {"router.strategy": s, "workloads[0].arrival.rate": r}}
              for s in ("random", "least_latency") for r in (10, 20)]
    (d / "summary.json").write_text(json.dumps({"command": "sweep", "scenario": "sw",
                                                "seeds": [1, 2], "points": points}))
    html_path, md_path = write_report(d)
    page, md = html_path.read_text(), md_path.read_text()
    assert_self_contained(page)
    row = md_row(md, "random")
    assert row[1:4] == ["10", "2 of 2", "2,000"]
    s = A.replication_summary(pd.DataFrame(rows[:2]), "latency_p99").iloc[0]
    assert row[7] == f"{fmt_ms(s['mean'])} [{fmt_ms(s['ci_low'])}, {fmt_ms(s['ci_high'])}]"
    assert md_row(md, "router.strategy=least_latency,rate=20")[1:] == ["2", "OverflowError: boom"]
    assert re.findall(IMAGE, md) == ["sweep_percentiles.png"]
    assert "Latency percentiles across the sweep by workloads[0].arrival.rate" in md


def test_no_outputs_is_an_error(tmp_path):
    with pytest.raises(ReportError, match="no fedsim outputs"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="not a directory"):
        write_report(tmp_path / "missing")


# =========================================================================== the command line

SMALL = """\
name: clireport
seed: 3
duration: 12s
warmup: 1s
replications: 2
regions: [{id: eu}]
nodes:
  - {name: n, region: eu, count: 2, gpus: 2, models: [{model: m, capabilities: [generate]}]}
workloads: [{arrival: {kind: poisson, rate: 20/s}}]
faults: [{kind: crash, target: n-0, at: 4s, duration: 3s}]
"""


def fedsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_report_command_and_automatic_reports(tmp_path, capsys, monkeypatch):
    (tmp_path / "small.yaml").write_text(SMALL)
    # `fedsim run` ends with the report
    ran = fedsim("run", "small.yaml", "--out", "r", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "report: r/report.html" in ran.stdout
    md = (tmp_path / "r" / "report.md").read_text()
    doc = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert md_row(md, "latency p99 (ms)")[1] == fmt_ms(doc["aggregate"]["latency_p99"])
    assert_self_contained((tmp_path / "r" / "report.html").read_text())
    # --no-report: none (in this process, to keep the test quick); --json: stdout pure JSON
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["compare", "small.yaml", "--strategies", "random,least_latency", "--no-report",
                 "--json", "--out", "c"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == "random"
    assert (tmp_path / "c" / "comparison.csv").is_file()
    assert not (tmp_path / "c" / "report.html").exists()
    # `fedsim report DIR` afterwards
    rep = fedsim("report", "c", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert rep.stdout.strip() == "wrote c/report.html and c/report.md"
    assert md_row((tmp_path / "c" / "report.md").read_text(), "least_latency")
    # nothing recognisable, or no folder: exit 2 with a message, no traceback
    (tmp_path / "empty").mkdir()
    proc = fedsim("report", "empty", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("fedsim report: empty: no fedsim outputs found")
    assert not (tmp_path / "empty" / "report.html").exists()
    assert main(["report", "missing"]) == 2
    assert capsys.readouterr().err == "fedsim report: missing: not a directory\n"
