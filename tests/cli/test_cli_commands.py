"""The ``fedsim`` command line, run for real in subprocesses (``python -m fedsim.cli``).

Scenario files are written into a temporary folder; each run is a few simulated seconds so
the whole file stays well under a minute.  Every call checks that no traceback reaches the
user."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_run import fedsim

BASE = """\
name: clitest
seed: 3
duration: 20s
warmup: 2s
replications: 2
sample_interval: 1s
regions:
  - id: eu
  - id: us
network:
  rtt: {eu: {us: 80ms}}
nodes:
  - name: eu-gpu
    region: eu
    count: 2
    gpus: 2
    models: [{model: llama, capabilities: [generate]}]
    service: {"*": {kind: lognormal, mean: 100ms, cv: 0.5}}
  - name: us-gpu
    region: us
    count: 2
    gpus: 2
    models: [{model: llama, capabilities: [generate]}]
    service: {"*": {kind: lognormal, mean: 150ms, cv: 0.5}}
workloads:
  - arrival: {kind: poisson, rate: 20/s}
faults:
  - {kind: crash, target: eu-gpu-0, at: 8s, duration: 6s}
"""

SWEEP = """\
extends: base.yaml
sweep:
  grid:
    router.strategy: [least_latency, random]
    router.fixes: [none, all]
"""

FAILING_SWEEP = """\
extends: base.yaml
replications: 1
sweep:
  points:
    - {router.strategy: least_latency}
    - {router.strategy: random, "nodes[0].speed": 1.0e-310}
    - {router.strategy: round_robin}
"""

BAD = """\
name: bad
duration: 10s
regions: [{id: eu}]
nodes:
  - name: n
    region: eu
    gpu: 2
    models: [{model: m, capabilities: [generate]}]
workloads: [{arrival: {kind: poisson, rate: 1}}]
"""

TABLES = ("requests", "attempts", "timeseries", "events")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "base.yaml").write_text(BASE)
    (d / "sweep.yaml").write_text(SWEEP)
    (d / "failing_sweep.yaml").write_text(FAILING_SWEEP)
    (d / "bad.yaml").write_text(BAD)
    return d


@pytest.fixture(scope="module")
def run_out(work):
    out = work / "run-out"
    proc = fedsim("run", "base.yaml", "--out", str(out), cwd=work)
    return proc, out


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# --------------------------------------------------------------------------- run


def test_run_prints_a_summary_table(run_out):
    proc, out = run_out
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("run "))
    for col in ("requests", "success", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "retries/req"):
        assert col in header
    assert any(line.startswith("seed 3 ") for line in lines)
    assert any(line.startswith("seed 4 ") for line in lines)
    assert any(line.startswith("all seeds ") for line in lines)
    assert "strategy least_latency" in proc.stdout
    assert "ETA" not in proc.stderr  # not a terminal: no progress


def test_run_writes_tables_matching_the_summary(run_out):
    _, out = run_out
    doc = _summary(out)
    assert doc["scenario"] == "clitest"
    assert doc["file"] == "base.yaml"
    assert doc["seeds"] == [3, 4] and doc["finished_seeds"] == [3, 4]
    assert doc["overrides"] == [] and doc["interrupted"] is False
    assert len(doc["replications"]) == 2
    agg = doc["aggregate"]
    assert agg["replications"] == 2
    assert agg["requests"] == sum(r["requests"] for r in doc["replications"])
    assert set(agg["across_seeds"]) >= {"latency_p99", "success_rate"}
    for table in TABLES:
        frame = pd.read_parquet(out / f"{table}.parquet")
        assert len(frame) == doc["rows"][table] > 0, table
        assert frame.columns[0] == "seed" and set(frame["seed"]) == {3, 4}, table
    req = pd.read_parquet(out / "requests.parquet")
    for rep in doc["replications"]:
        mine = req[(req["seed"] == rep["seed"]) & (req["arrival"] >= 2.0)]
        assert len(mine) == rep["requests"]
        assert (mine["status"] == "success").sum() == rep["succeeded"]
    events = pd.read_parquet(out / "events.parquet")
    faults = events[events["category"] == "fault"]
    assert list(faults["old"][faults["seed"] == 3]) == ["start", "end"]
    md = (out / "summary.md").read_text()
    assert "| all seeds |" in md and "latency_percentiles.png" in md


def test_run_writes_non_trivial_plots(run_out):
    _, out = run_out
    import matplotlib.image

    for name in ("latency_percentiles.png", "timeline.png"):
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_run_json_seed_and_set(work, run_out):
    _, out = run_out
    first = _summary(out)["replications"][0]  # seed 3, one replication of base.yaml
    # --json: only the JSON on stdout; default --out is results/<name>-<time> under the cwd
    seeded = fedsim("run", "base.yaml", "--json", "--set", "replications=1", "--seed", "11",
                    cwd=work)
    assert seeded.returncode == 0, seeded.stderr
    doc = json.loads(seeded.stdout)
    assert doc["seeds"] == [11] and doc["overrides"] == ["replications=1"]
    written = Path(doc["out"])
    if not written.is_absolute():
        written = work / written
    assert re.fullmatch(r"clitest-\d{8}-\d{6}(-\d+)?", written.name)
    assert written.parent == work / "results"
    assert json.loads((written / "summary.json").read_text()) == doc
    assert "seed" not in pd.read_parquet(written / "requests.parquet").columns
    rep = doc["replications"][0]
    assert rep["seed"] == 11
    assert (rep["requests"], rep["latency_p50"]) != (first["requests"], first["latency_p50"])

    changed = fedsim("run", "base.yaml", "--json", "--quiet", "--set", "replications=1",
                     "--set", "workloads[0].arrival.rate=5/s", "--out", str(work / "set"),
                     cwd=work)
    assert changed.returncode == 0, changed.stderr
    rep = json.loads(changed.stdout)["replications"][0]
    assert rep["seed"] == 3
    assert rep["requests"] < first["requests"] / 2


def test_run_bad_input_exits_2_without_traceback(work):
    bad = fedsim("run", "bad.yaml", "--out", str(work / "bad-out"), cwd=work)
    assert bad.returncode == 2
    assert re.search(r"bad\.yaml:7:\d+: error: nodes\[0\]\.gpu: unknown key 'gpu'", bad.stderr)
    assert "did you mean 'gpus'?" in bad.stderr
    assert not (work / "bad-out").exists()
    badset = fedsim("run", "base.yaml", "--set", "router.strategy=least_latncy", cwd=work)
    assert badset.returncode == 2
    assert "--set router.strategy=least_latncy" in badset.stderr
    assert "unknown strategy" in badset.stderr


def test_run_failure_inside_the_simulation_exits_1(work):
    proc = fedsim("run", "base.yaml", "--set", "nodes[0].speed=1.0e-310", "--set",
                  "replications=1", "--out", str(work / "fail"), cwd=work)
    assert proc.returncode == 1
    assert "the simulation failed: OverflowError" in proc.stderr


def test_run_ctrl_c_keeps_what_finished(work):
    out = work / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedsim.cli", "run", "base.yaml", "--set", "duration=10h",
         "--out", str(out)], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(2.0)  # well into the simulation, even on a loaded machine
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    doc = _summary(out)
    assert doc["interrupted"] is True
    assert doc["finished_seeds"] == [3]
    rep = doc["replications"][0]
    assert rep["interrupted"] is True and 0 < rep["simulated_seconds"] < 36000
    for table in TABLES:
        assert len(pd.read_parquet(out / f"{table}.parquet")) == doc["rows"][table]
    assert "(interrupted)" in stdout


def test_progress_on_a_terminal_only(work):
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "fedsim.cli", "run", "base.yaml", "--set",
                               "replications=1", "--out", str(work / "tty")], cwd=work,
                              stdout=subprocess.PIPE, stderr=slave, text=True, timeout=60)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "requests done" in err and "ETA" in err and "sim " in err and "wall " in err
    assert "\r" in err


# --------------------------------------------------------------------------- compare


def test_compare_strategies_paired_with_ci(work, run_out):
    out = work / "cmp"
    proc = fedsim("compare", "base.yaml", "--strategies", "least_latency,random,round_robin",
                  "--out", str(out), cwd=work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("variant"))
    assert "Δp99 ms" in header and "95% CI" in header and "p50 ms" in header
    rows = {line.split()[0]: line for line in lines
            if line.split() and line.split()[0] in ("least_latency", "random", "round_robin")}
    assert set(rows) == {"least_latency", "random", "round_robin"}
    assert "baseline" in rows["least_latency"]
    assert re.search(r"\[[+-]\d+\.\d, [+-]\d+\.\d\]", rows["random"])
    csv = pd.read_csv(out / "comparison.csv")
    assert list(csv["variant"]) == ["least_latency", "random", "round_robin"]
    assert {"p99_diff_mean", "p99_diff_ci_low", "p99_diff_ci_high"} <= set(csv.columns)
    assert csv["p99_diff_mean"][0] == 0
    r = csv.iloc[1]
    assert r["p99_diff_ci_low"] <= r["p99_diff_mean"] <= r["p99_diff_ci_high"]
    doc = _summary(out)
    assert doc["seeds"] == [3, 4] and doc["baseline"] == "least_latency"
    # common random numbers: the baseline variant is exactly `fedsim run` on the same seeds
    base = doc["variants"][0]["aggregate"]
    ran = _summary(run_out[1])["aggregate"]
    assert base["latency_p99"] == ran["latency_p99"] and base["requests"] == ran["requests"]
    # every variant saw the same requests
    assert len({v["aggregate"]["requests"] for v in doc["variants"]}) == 1


def test_compare_fixes_one_seed_says_na(work):
    out = work / "cmp-fixes"
    proc = fedsim("compare", "base.yaml", "--fixes", "none,all,active_probes+retry_excludes_tried",
                  "--set", "replications=1", "--out", str(out), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "n/a" in proc.stdout
    doc = _summary(out)
    assert [v["variant"] for v in doc["variants"]] == [
        "fixes=none", "fixes=all", "fixes=active_probes+retry_excludes_tried"]
    assert doc["variants"][2]["fixes"] == "active_probes,retry_excludes_tried"
    assert doc["variants"][1]["p99_diff"]["ci_low"] is None
    csv = pd.read_csv(out / "comparison.csv")
    assert len(csv) == 3 and csv["p99_diff_ci_low"].isna().all()


def test_compare_unknown_names_exit_2_with_suggestion(work):
    s = fedsim("compare", "base.yaml", "--strategies", "least_latency,roundrobin", cwd=work)
    assert s.returncode == 2 and "did you mean 'round_robin'?" in s.stderr
    f = fedsim("compare", "base.yaml", "--fixes", "none,activ_probes", cwd=work)
    assert f.returncode == 2 and "did you mean 'active_probes'?" in f.stderr


# --------------------------------------------------------------------------- sweep


def test_sweep_same_table_with_one_or_two_workers(work, run_out):
    p1 = fedsim("sweep", "sweep.yaml", "--workers", "1", "--out", str(work / "sw1"), cwd=work)
    p2 = fedsim("sweep", "sweep.yaml", "--workers", "2", "--out", str(work / "sw2"), "--quiet",
                cwd=work)
    assert p1.returncode == 0 and p2.returncode == 0, p1.stderr + p2.stderr
    t1 = (work / "sw1" / "sweep.csv").read_text()
    assert t1 == (work / "sw2" / "sweep.csv").read_text()
    frame = pd.read_csv(work / "sw1" / "sweep.csv")
    assert len(frame) == 4 * 2
    assert list(frame.columns[:4]) == ["point", "router.strategy", "router.fixes", "seed"]
    assert {"requests", "success_rate", "latency_p50", "latency_p99", "retries_per_request",
            "error"} <= set(frame.columns)
    assert list(frame["seed"]) == [3, 4] * 4
    assert list(frame["router.strategy"]) == ["least_latency"] * 4 + ["random"] * 4
    assert frame["error"].isna().all()
    assert len(pd.read_parquet(work / "sw2" / "sweep.parquet")) == 8
    # a point of the sweep is the same run as `fedsim run` with those values
    ll_none = frame[(frame["router.strategy"] == "least_latency") & (frame["router.fixes"] == "none")]
    ran = _summary(run_out[1])["replications"]
    assert list(ll_none["requests"]) == [r["requests"] for r in ran]
    assert list(ll_none["latency_p99"]) == pytest.approx([r["latency_p99"] for r in ran], rel=1e-12)
    assert "random" in p1.stdout and "router.fixes=all" in p1.stdout


def test_sweep_failing_point_is_reported_and_others_kept(work):
    out = work / "swf"
    proc = fedsim("sweep", "failing_sweep.yaml", "--workers", "2", "--out", str(out), cwd=work)
    assert proc.returncode == 1
    assert re.search(r"point router\.strategy=random, nodes\[0\]\.speed=1e-310 \(seed 3\) "
                     r"failed: OverflowError", proc.stderr)
    frame = pd.read_csv(out / "sweep.csv")
    assert list(frame["router.strategy"]) == ["least_latency", "random", "round_robin"]
    ok = frame[frame["error"].isna()]
    assert len(ok) == 2 and (ok["requests"] > 0).all()
    assert frame["error"][1].startswith("OverflowError")
    doc = _summary(out)
    assert doc["failed"][0]["params"] == {"router.strategy": "random", "nodes[0].speed": 1e-310}


def test_sweep_without_sweep_section_exits_2(work):
    proc = fedsim("sweep", "base.yaml", cwd=work)
    assert proc.returncode == 2
    assert "no sweep: section" in proc.stderr


# --------------------------------------------------------------------------- validate, list, schema


def test_validate(work):
    ok = fedsim("validate", "base.yaml", "sweep.yaml", cwd=work)
    assert ok.returncode == 0
    assert ok.stdout.splitlines() == ["ok  base.yaml (1 point, 2 replications)",
                                      "ok  sweep.yaml (4 points, 2 replications)"]
    bad = fedsim("validate", "base.yaml", "bad.yaml", "missing.yaml", cwd=work)
    assert bad.returncode == 2
    assert "ok  base.yaml" in bad.stdout
    assert "bad.yaml:7:" in bad.stderr and "missing.yaml: error: file not found" in bad.stderr


def test_list_names_every_registry():
    from fedsim.federation import FIX_DESCRIPTIONS, POLICIES, STRATEGIES
    from fedsim.world import ARRIVALS, DISTRIBUTIONS, FAULT_KINDS, SERVICE_MODELS

    proc = fedsim("list", cwd=Path.cwd())
    assert proc.returncode == 0
    from fedsim.executors import executor_names

    for title in ("strategies:", "policies:", "fixes:", "fault kinds:", "service models",
                  "distributions:", "arrival processes:", "sweep executors"):
        assert title in proc.stdout
    for name in (list(STRATEGIES) + list(POLICIES) + list(FIX_DESCRIPTIONS) + list(FAULT_KINDS)
                 + list(SERVICE_MODELS) + list(DISTRIBUTIONS) + list(ARRIVALS)
                 + executor_names()):
        assert re.search(rf"^  {re.escape(name)} +\S", proc.stdout, re.M), name


def test_schema(work):
    proc = fedsim("schema", cwd=work)
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert "properties" in schema and {"nodes", "sweep", "extends"} <= set(schema["properties"])
    from fedsim import cli  # --out, in process

    assert cli.main(["schema", "--out", str(work / "schema.json")]) == 0
    assert json.loads((work / "schema.json").read_text()) == schema


def test_no_command_and_usage_errors_exit_2(work):
    none = fedsim(cwd=work)
    assert none.returncode == 2 and "usage: fedsim" in none.stdout
    unknown = fedsim("frobnicate", cwd=work)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_run_live_dashboard(work):
    pytest.importorskip("fedsim.live")
    out = work / "live"
    proc = fedsim("run", "base.yaml", "--set", "replications=1", "--live", "--speed", "0",
                  "--out", str(out), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "GATEWAY STATS" in proc.stdout and "CIRCUIT BREAKERS" in proc.stdout
    assert _summary(out)["replications"][0]["requests"] > 0
