"""Baselines: the diff-friendly file, and compare's verdicts (paired on common random
numbers when the world and seeds are unchanged, Welch otherwise), tolerance and exit codes."""

from __future__ import annotations

import json

import pytest
import yaml

from fedsim.testing import (DEFAULT_BASELINE_METRICS, BaselineError, assert_no_regression,
                            baseline_compare_main, baseline_save_main, compare_baseline,
                            save_baseline, scenario_hashes)
from fedsim.testing import _compare_values  # the statistics, tested directly
from fedsim.world import Scenario

from conftest import LIBRARY, ROOT, tiny_yaml

# the three-region world, balanced by power-of-two-choices; 4 seeds x 20 s
GOOD = ["router.strategy=power_of_two_choices", "replications=4"]
BASE = LIBRARY / "base" / "three_regions.yaml"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    path = tmp_path_factory.mktemp("baseline") / "three_regions.json"
    doc = save_baseline(BASE, path, overrides=GOOD, duration="20s")
    return path, doc


def test_the_file_is_small_sorted_and_one_metric_per_line(baseline):
    path, doc = baseline
    text = path.read_text()
    data = json.loads(text)
    assert data == json.loads(json.dumps(doc))
    assert data["format"] == "fedsim-baseline/1"
    assert data["scenario"] == "three_regions" and data["seeds"] == [7, 8, 9, 10]
    assert data["overrides"] == [*GOOD, "duration=20s", "warmup=1s"]
    assert len(data["scenario_hash"]) == len(data["world_hash"]) == 16
    assert list(data) == sorted(data)
    assert set(data["metrics"]) == set(DEFAULT_BASELINE_METRICS)
    lines = text.splitlines()
    for m in DEFAULT_BASELINE_METRICS:  # each metric is one line
        (line,) = [ln for ln in lines if ln.strip().startswith(f'"{m}": ')]
        entry = json.loads(line.strip().removeprefix(f'"{m}": ').rstrip(","))
        assert set(entry) == {"better", "ci", "mean", "n", "unit", "values"}
        assert len(entry["values"]) == 4
    p99 = data["metrics"]["p99_latency"]
    assert p99["better"] == "lower" and p99["unit"] == "s" and p99["n"] == 4
    assert p99["ci"][0] < p99["mean"] < p99["ci"][1]
    assert len(text) < 6000 and len(lines) < 45


def test_unchanged_scenario_is_paired_and_unchanged(baseline):
    path, _ = baseline
    rep = compare_baseline(BASE, path, overrides=GOOD[:1])
    assert rep.exit_code == 0 and rep.paired == {"": True}
    assert "paired t-test on common random numbers (scenario unchanged, same seeds)" in rep.notes[0]
    verdicts = {r.metric: r.verdict for r in rep.rows}
    assert verdicts["p99_latency"] == "unchanged"
    assert set(verdicts.values()) <= {"unchanged", "no data"}


def test_a_worse_routing_setting_is_a_significant_regression(baseline, capsys):
    path, _ = baseline
    rep = compare_baseline(BASE, path, overrides=["router.strategy=least_latency"])
    assert rep.paired == {"": True}  # only the router changed: same world, same seeds
    assert "router settings changed, same world" in rep.notes[0]
    rows = {r.metric: r for r in rep.rows}
    mean = rows["mean_latency"]
    assert mean.verdict == "regression" and mean.failed and mean.test == "paired"
    assert mean.diff > 0 and mean.relative > 0.05 and mean.p_value < 0.05
    assert rows["load_imbalance_cv"].verdict == "regression"
    assert rep.exit_code == 1
    text = rep.format()
    assert "REGRESSION" in text and "significant regression(s) beyond the tolerance" in text
    # the CLI entry point: exit 1 and the table on stdout
    assert baseline_compare_main(BASE, path, 0.05, overrides=["router.strategy=least_latency"]) == 1
    out = capsys.readouterr().out
    assert "mean_latency" in out and "REGRESSION" in out
    # and from a hand-written test
    with pytest.raises(AssertionError, match="REGRESSION"):
        assert_no_regression(BASE, path, overrides=["router.strategy=least_latency"])


def test_tolerance_lets_small_significant_regressions_pass(baseline):
    path, _ = baseline
    rep = compare_baseline(BASE, path, tolerance=1e6, overrides=["router.strategy=least_latency"])
    rows = {r.metric: r for r in rep.rows}
    assert rows["mean_latency"].verdict == "minor regression" and not rows["mean_latency"].failed
    assert rep.exit_code == 0
    per_metric = compare_baseline(BASE, path, tolerance={"*": 1e6, "mean_latency": 0.01},
                                  overrides=["router.strategy=least_latency"])
    assert [r.metric for r in per_metric.regressions] == ["mean_latency"]


def test_a_changed_world_is_compared_with_welch(baseline):
    path, _ = baseline
    rep = compare_baseline(BASE, path, overrides=["workloads[0].arrival.rate=61/s"])
    assert rep.paired == {"": False}
    assert "Welch's t-test: the world changed since the baseline" in rep.notes[0]
    assert all(r.test == "welch" for r in rep.rows if r.verdict != "no data")
    rows = {r.metric: r for r in rep.rows}
    assert rows["goodput"].verdict in ("noise", "improvement")
    assert rows["privacy_violations"].verdict == "unchanged"
    # other seeds cannot pair either
    rep = compare_baseline(BASE, path, seed=100)
    assert rep.seeds == [100, 101, 102, 103] and "seeds differ" in rep.notes[0]


def test_statistics():
    # paired: identical -> p 1; a constant shift -> p 0; otherwise scipy's ttest_rel
    assert _compare_values([1, 2, 3], [1, 2, 3], True, 0.95)[-1] == 1.0
    test, n, om, nm, diff, lo, hi, p = _compare_values([1, 2, 3], [2, 3, 4], True, 0.95)
    assert (test, n, diff, p) == ("paired", 3, 1.0, 0.0)
    from scipy import stats

    old, new = [1.0, 2.0, 3.5, 4.0], [1.5, 2.1, 4.5, 4.2]
    assert _compare_values(old, new, True, 0.95)[-1] == pytest.approx(stats.ttest_rel(new, old).pvalue)
    w = _compare_values(old, new, False, 0.95)
    assert w[0] == "welch" and w[-1] == pytest.approx(stats.ttest_ind(new, old, equal_var=False).pvalue)
    assert w[5] < w[4] < w[6]
    # missing values (None) drop their pair
    assert _compare_values([1, None, 3], [1, 5, 3], True, 0.95)[1] == 2


def test_never_recovered_is_stored_as_inf_and_compared(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_yaml(), encoding="utf-8")
    base = tmp_path / "tiny.json"
    doc = save_baseline(path, base, metrics=["time_to_recover", "p50_latency"])
    assert "inf" in doc["metrics"]["time_to_recover"]["values"]  # Q-NORECOVER
    assert doc["metrics"]["time_to_recover"]["mean"] == "inf"
    assert '"inf"' in base.read_text()
    rep = compare_baseline(path, base, overrides=["router.fixes=[active_probes]",
                                                  "router.health.check_interval=2s"])
    rows = {r.metric: r for r in rep.rows}
    assert rows["time_to_recover"].verdict == "improvement"
    assert rows["time_to_recover"].test.startswith("never: ")


def test_hashes_ignore_assertions_and_split_router_from_world():
    data = yaml.safe_load(tiny_yaml())
    a = Scenario.model_validate(data)
    b = Scenario.model_validate({**data, "assertions": ["p99_latency <= 1s"]})
    c = Scenario.model_validate({**data, "router": {"strategy": "random"}})
    d = Scenario.model_validate({**data, "duration": 30})
    assert scenario_hashes(a) == scenario_hashes(b)
    assert scenario_hashes(a)[0] != scenario_hashes(c)[0]
    assert scenario_hashes(a)[1] == scenario_hashes(c)[1]
    assert scenario_hashes(a)[1] != scenario_hashes(d)[1]


def test_entry_points_exit_codes(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_yaml(), encoding="utf-8")
    out = tmp_path / "sub" / "b.json"
    assert baseline_save_main(path, out, overrides=["duration=10s"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "p99_latency" in printed and "95% CI" in printed
    assert json.loads(out.read_text())["overrides"] == ["duration=10s"]
    assert baseline_compare_main(path, out, 0.05) == 0  # the baseline's overrides are reapplied
    assert "scenario unchanged" in capsys.readouterr().out
    assert baseline_compare_main(path, tmp_path / "nope.json", 0.05) == 2
    assert "baseline file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert baseline_compare_main(path, bad, 0.05) == 2
    assert "bad.json:1:2: not valid JSON" in capsys.readouterr().err
    bad.write_text("{}")
    assert baseline_compare_main(path, bad, 0.05) == 2
    assert "not a fedsim baseline" in capsys.readouterr().err
    assert baseline_compare_main(path, out, -1) == 2
    assert baseline_save_main(tmp_path / "missing.yaml", out) == 2
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(BaselineError):
        compare_baseline(path, bad)


def test_the_documented_example_keeps_its_committed_baseline():
    """docs/regression_testing.md: the worked example's committed baseline still holds, so
    routing quality in the three-region world is regression-tested here too."""
    docs = ROOT / "docs" / "examples"
    rep = compare_baseline(docs / "slo_three_regions.yaml", docs / "slo_three_regions.baseline.json")
    assert rep.exit_code == 0, rep.format()
    assert rep.paired == {"": True}
