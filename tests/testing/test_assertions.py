"""SLO assertions: the ``assertions:`` syntax and its load-time errors, evaluation over
results (measured values, margins, groups, confidence bounds), reports (table, JUnit) and
``check_main``."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml
from scipy import stats

from fedsim import analysis
from fedsim.scenario import ScenarioError, json_schema, load_scenario
from fedsim.testing import (SLOViolation, assert_beats, assert_slo, check_main, evaluate,
                            format_table, junit_xml, metric_values, run_and_check,
                            run_scenario)
from fedsim.world import Scenario
from fedsim.world.assertions import METRICS, PRESETS, parse_check

from conftest import LIBRARY, tiny_yaml


# ----------------------------------------------------------------------------- syntax


@pytest.mark.parametrize("text, metric, stat, op, bound", [
    ("p99_latency <= 800ms", "p99_latency", None, "<=", 0.8),
    ("p99_latency<=0.8", "p99_latency", None, "<=", 0.8),
    ("success_rate >= 99%", "success_rate", None, ">=", 0.99),
    ("success_rate >= 0.99", "success_rate", None, ">=", 0.99),
    ("p99_latency.upper95 <= 1s", "p99_latency", "upper95", "<=", 1.0),
    ("p50_latency.lower90 > 2ms", "p50_latency", "lower90", ">", 0.002),
    ("mean_latency.mean < 1m", "mean_latency", "mean", "<", 60.0),
    ("privacy_violations == 0", "privacy_violations", None, "==", 0.0),
    ("goodput >= 300/min", "goodput", None, ">=", 5.0),
    ("circuit_recovery_time.max <= 60s", "circuit_recovery_time", "max", "<=", 60.0),
])
def test_checks_parse_with_units_and_statistics(text, metric, stat, op, bound):
    c = parse_check(text)
    assert (c.metric, c.stat, c.op) == (metric, stat, op)
    assert c.bound == pytest.approx(bound)
    assert str(c) == text


def test_every_listed_metric_is_known_and_the_playbook_set_uses_the_spec_names():
    expected = {"p50_latency", "p90_latency", "p95_latency", "p99_latency", "p999_latency",
                "mean_latency", "success_rate", "goodput", "retries_per_request",
                "retry_effectiveness", "circuit_recovery_time", "time_to_detect",
                "time_to_recover", "privacy_violations", "load_imbalance_cv",
                "load_imbalance_max_over_mean", "gpu_utilization", "traffic_to_down_nodes",
                "routing_latency"}
    assert expected <= set(METRICS)
    sc = Scenario.model_validate({**yaml.safe_load(tiny_yaml()), "assertions": ["playbook"]})
    got = [(a.title, str(a.check), a.critical and str(a.critical)) for a in sc.assertions]
    assert got == [
        ("routing_latency", "routing_latency <= 10ms", "routing_latency <= 50ms"),
        ("success_rate", "success_rate_total >= 0.99", "success_rate_total >= 0.95"),
        ("circuit_recovery", "circuit_recovery_time <= 60s", None),
        ("retry_effectiveness", "retry_effectiveness >= 0.8", None),
    ]
    assert [a.source_index for a in sc.assertions] == [0, 0, 0, 0]
    assert set(PRESETS) == {"playbook"}


def test_mapping_form_defaults_and_the_dump_loads_again(tiny):
    path = tiny("""
        - p99_latency <= 800ms
        - {check: "success_rate >= 0.99", by: region, critical: ">= 0.95"}
        - {name: tail, check: "p99_latency.upper95 <= 1s"}
        - playbook
        """)
    sc = load_scenario(path).scenario
    titles = [a.title for a in sc.assertions]
    assert titles[:3] == ["p99_latency <= 800ms", "success_rate >= 0.99 by region", "tail"]
    assert len(titles) == 7
    assert sc.assertions[1].by == "region" and sc.assertions[1].critical.bound == 0.95
    dumped = sc.model_dump(mode="json")
    assert dumped["assertions"][1] == {"name": "success_rate >= 0.99 by region",
                                       "check": "success_rate >= 0.99", "by": "region",
                                       "critical": ">= 0.95"}
    again = Scenario.model_validate(dumped)
    assert [a.title for a in again.assertions] == titles
    assert Scenario.model_validate_json(sc.model_dump_json()).assertions[6].title == "retry_effectiveness"


def test_schema_describes_assertions():
    schema = json_schema()
    item = schema["properties"]["assertions"]["items"]
    kinds = {s["type"] for s in item["anyOf"]}
    assert kinds == {"string", "object"}
    obj = next(s for s in item["anyOf"] if s["type"] == "object")
    assert obj["additionalProperties"] is False
    assert set(obj["properties"]) == {"name", "check", "by", "critical"}
    assert "p99_latency" in schema["properties"]["assertions"]["items"]["description"]


def _errors(tiny, block: str) -> str:
    path = tiny(block)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    return str(exc.value)


def _line_of(path_text: str, needle: str) -> int:
    return next(i for i, line in enumerate(path_text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("item, message", [
    ("p99_latncy <= 800ms", "unknown metric 'p99_latncy'; did you mean 'p99_latency'?"),
    ("sucess_rate >= 0.99", "did you mean 'success_rate'?"),
    ("p99_latency => 800ms", "bad operator '=>' in 'p99_latency => 800ms'; did you mean '>='?"),
    ("p99_latency = 800ms", "bad operator '='"),
    ("p99_latency 800ms", "missing operator"),
    ("p99_latency <= fast", "p99_latency: malformed duration 'fast'"),
    ("success_rate >= lots", "malformed percentage 'lots'"),
    ("privacy_violations == none", "privacy_violations is a count; expected a number"),
    ("p99_latency.upper <= 1s", "unknown statistic 'upper'; did you mean 'upper95'?"),
    ("p99_latency <=", "missing value after the operator"),
])
def test_bad_checks_are_load_errors_at_their_line(tiny, item, message):
    path = tiny(f"- p50_latency <= 1s\n- {item}\n")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    (issue,) = exc.value.issues
    assert message in issue.message
    assert issue.path == "assertions[1].check"
    assert issue.file == str(path)
    assert issue.line == _line_of(path.read_text(), item) and issue.column == 5


def test_mapping_errors_point_at_the_key(tiny):
    path = tiny("""
        - {check: "p99_latency <= 1s", by: regoin}
        - {check: "gpu_utilization <= 0.9", by: tenant}
        - {check: "p99_latency <= 1s", critical: "success_rate >= 0.9"}
        - {check: "p99_latency <= 1s", crit: ">= 2s"}
        - {by: region}
        """)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    text = path.read_text()
    got = {i.path: i for i in exc.value.issues}
    assert "unknown group 'regoin'; did you mean 'region'?" in got["assertions[0].by"].message
    assert "cannot be grouped by tenant; it can be by region, strategy" in got["assertions[1].by"].message
    assert "critical must be on the assertion's metric 'p99_latency'" in got["assertions[2].critical"].message
    crit = got["assertions[3].crit"]
    assert "unknown key 'crit'; valid keys here: check, by, critical, name" in crit.message
    assert crit.hint == "did you mean 'critical'?"
    assert "needs a 'check'" in got["assertions[4]"].message
    assert got["assertions[0].by"].line == _line_of(text, "regoin")


def test_duplicate_names_are_refused_even_through_the_preset(tiny):
    msg = _errors(tiny, "- success_rate >= 0.99\n- playbook\n- {name: success_rate, check: 'p50_latency <= 1s'}\n")
    assert "assertions[2]: duplicate assertion name 'success_rate' (also assertions[1])" in msg
    assert re.search(r"tiny\.yaml:\d+:5: error", msg)


def test_errors_through_check_main_are_exit_2_with_positions(tiny, capsys):
    path = tiny("- p99_latncy <= 800ms\n")
    assert check_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(path))}:\d+:5: error: assertions\[0\]\.check: unknown "
                     r"metric 'p99_latncy'; did you mean 'p99_latency'\?", err)


# ----------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def tiny_runs():
    """The tiny scenario's three seeds, run once for the module."""
    return run_scenario(yaml.safe_load(tiny_yaml()))


def test_measured_values_are_the_analysis_numbers(tiny_runs):
    assert tiny_runs.seeds == [3, 4, 5]
    outs = assert_slo(tiny_runs, ["p99_latency <= 10s", "success_rate >= 0.5",
                                  "retries_per_request <= 5"])
    per_seed_p99 = [float(analysis.latency_percentiles(r.requests)["p99"][0]) for r in tiny_runs]
    assert per_seed_p99 == [r.summary()["latency_p99"] for r in tiny_runs]
    assert outs[0].values == pytest.approx(per_seed_p99)
    assert outs[0].measured == pytest.approx(np.mean(per_seed_p99))
    assert outs[0].margin == pytest.approx(10.0 - np.mean(per_seed_p99))
    sr = [r.summary()["success_rate"] for r in tiny_runs]
    assert outs[1].measured == pytest.approx(np.mean(sr)) and outs[1].margin > 0
    assert outs[2].values == pytest.approx([r.summary()["retries_per_request"] for r in tiny_runs])
    assert all(o.passed and o.seeds == [3, 4, 5] for o in outs)


def test_confidence_bounds_are_the_t_interval_across_seeds(tiny_runs):
    v = metric_values(tiny_runs, "p99_latency")["value"].to_numpy()
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    hi, lo, mean, worst = (o.measured for o in assert_slo(tiny_runs, [
        "p99_latency.upper95 <= 1h", "p99_latency.lower95 <= 1h", "p99_latency.mean <= 1h",
        "p99_latency.max <= 1h"]))
    assert hi == pytest.approx(v.mean() + half) and lo == pytest.approx(v.mean() - half)
    assert mean == pytest.approx(v.mean()) and worst == pytest.approx(v.max())
    # a bound between the mean and the upper bound: the mean passes, the bound does not
    bound = (v.mean() + hi) / 2
    assert assert_slo(tiny_runs, f"p99_latency <= {bound}")[0].passed
    with pytest.raises(SLOViolation) as exc:
        assert_slo(tiny_runs, f"p99_latency.upper95 <= {bound}")
    assert "upper bound of the 95% t-interval over 3 seeds" in str(exc.value)


def test_a_confidence_bound_needs_two_seeds(tiny_runs):
    with pytest.raises(SLOViolation) as exc:
        assert_slo(tiny_runs[0], "p99_latency.upper95 <= 1h")
    assert "needs values from >= 2 seeds, found 1" in str(exc.value)


def test_failure_message_has_measured_bound_margin_and_seed(tiny_runs):
    with pytest.raises(SLOViolation) as exc:
        assert_slo(tiny_runs, "p50_latency <= 20ms")
    (o,) = exc.value.outcomes
    values = metric_values(tiny_runs, "p50_latency")
    worst = int(values.loc[values["value"].idxmax(), "seed"])
    assert not o.passed and o.worst_seed == worst
    msg = str(exc.value)
    assert f"p50_latency = {o.measured * 1e3:.1f} ms (mean of 3 seeds)" in msg
    assert "bound:     <= 20.0 ms" in msg
    assert f"margin:    {o.margin * 1e3:+.1f} ms, violated by" in msg
    assert f"worst seed {worst}" in msg
    for s, v in zip(values["seed"], values["value"]):
        assert f"{s}: {v * 1e3:.1f} ms" in msg


def test_groups_by_region_gateway_capability_and_strategy(tiny_runs):
    by_region = assert_slo(tiny_runs, "success_rate >= 0.5", by="region")
    assert [o.group for o in by_region] == ["region=a", "region=b"]
    req = tiny_runs[0].requests
    a = req[(req.origin_region == "a") & (req.status != "in_flight")]
    assert by_region[0].values[0] == pytest.approx((a.status == "success").mean())
    assert [o.group for o in assert_slo(tiny_runs, "p99_latency <= 1h", by="gateway")] == [
        "gateway=gw-a", "gateway=gw-b"]
    assert [o.group for o in assert_slo(tiny_runs, "p99_latency <= 1h", by="capability")] == [
        "capability=generate"]
    (s,) = assert_slo(tiny_runs, "p99_latency <= 1h", by="strategy")
    assert s.group == "strategy=least_latency"
    assert s.measured == assert_slo(tiny_runs, "p99_latency <= 1h")[0].measured
    assert [o.group for o in assert_slo(tiny_runs, "gpu_utilization <= 1", by="region")] == [
        "region=a", "region=b"]
    assert [o.group for o in assert_slo(tiny_runs, "time_to_detect <= 1h", by="gateway")]


def test_critical_failures_and_vacuous_passes(tiny_runs):
    with pytest.raises(SLOViolation) as exc:
        assert_slo(tiny_runs, "p50_latency <= 1ms", critical="<= 2ms")
    (o,) = exc.value.outcomes
    assert o.critical_failed and o.status == "FAIL (critical)"
    assert "critical:  p50_latency <= 2ms fails too" in str(exc.value)
    with pytest.raises(SLOViolation) as exc:
        assert_slo(tiny_runs, "p50_latency <= 1ms", critical="<= 1h")
    assert not exc.value.outcomes[0].critical_failed
    # nothing opened a circuit: nothing to judge, passes; latency without data would fail
    (c,) = assert_slo(tiny_runs, "circuit_recovery_time <= 1ms")
    assert c.vacuous and c.status == "pass (no data)"
    (r,) = assert_slo(tiny_runs, "routing_latency <= 0ms")
    assert r.measured == 0.0


def test_fault_metrics_detect_and_never_recover_without_probes(tiny_runs):
    (d,) = assert_slo(tiny_runs, "time_to_detect <= 2s")
    assert 0 < d.measured < 2
    assert 0 < assert_slo(tiny_runs, "traffic_to_down_nodes <= 10%")[0].measured < 0.1
    # Q-NORECOVER: a node dropped as Unhealthy never comes back without active probes
    with pytest.raises(SLOViolation) as exc:
        assert_slo(tiny_runs, "time_to_recover <= 30s")
    assert exc.value.outcomes[0].measured == math.inf
    assert re.search(r"time_to_recover = never \(never, in \d of \d seeds with data\)",
                     str(exc.value))
    probes = run_scenario(yaml.safe_load(tiny_yaml()), router__fixes=["active_probes"],
                          router__health__check_interval="2s")
    (rec,) = assert_slo(probes, "time_to_recover <= 30s")
    assert 0 < rec.measured <= 4  # two successful probes, 2 s apart, after the repair


def test_privacy_violations_are_counted(tiny_runs):
    assert assert_slo(tiny_runs, "privacy_violations == 0")[0].measured == 0
    data = yaml.safe_load(tiny_yaml())
    data["regions"] = [{"id": "a", "privacy": "public"}, {"id": "b", "privacy": "confidential"}]
    data["workloads"][0]["privacy"] = "confidential"
    data["router"] = {"policy": [{"kind": "health"}]}  # no privacy policy at all
    runs = run_scenario(data, replications=1, faults=[])
    with pytest.raises(SLOViolation) as exc:
        assert_slo(runs, "privacy_violations == 0", by="region")
    by_origin = {o.group: o.measured for o in exc.value.outcomes}
    req = runs[0].requests
    served_in_a = req[(req.status == "success") & (req.region == "a")]
    assert sum(by_origin.values()) == len(served_in_a) > 0


def test_load_imbalance_counts_idle_nodes(tiny_runs):
    (cv,) = assert_slo(tiny_runs, "load_imbalance_cv <= 10")
    r = tiny_runs[0].requests
    counts = r[r.status == "success"].node.astype(str).value_counts().reindex(
        ["a-0", "a-1", "b-0", "b-1"], fill_value=0).to_numpy(float)
    assert cv.values[0] == pytest.approx(counts.std() / counts.mean())


def test_evaluate_uses_the_scenario_assertions(tiny_runs):
    sc = Scenario.model_validate({**yaml.safe_load(tiny_yaml()),
                                  "assertions": ["p99_latency <= 1h", "p50_latency <= 1ms"]})
    outs = evaluate(sc, tiny_runs)
    assert [o.passed for o in outs] == [True, False]
    assert [o.passed for o in evaluate(None, tiny_runs, ["success_rate >= 0"])] == [True]


# ----------------------------------------------------------------------------- reports


def test_run_and_check_table_and_junit(tiny, tmp_path):
    path = tiny("""
        - p99_latency <= 800ms
        - {name: too strict, check: "p50_latency <= 1ms", by: region}
        - success_rate >= 0.99
        """)
    rep = run_and_check(path)
    assert not rep.passed and rep.seeds == [3, 4, 5]
    assert list(rep.by_assertion()) == ["p99_latency <= 800ms", "too strict", "success_rate >= 0.99"]
    assert [o.name for o in rep.failures] == ["too strict", "too strict"]
    table = format_table(rep)
    assert re.search(r"tiny\s+p99_latency <= 800ms\s+\S+ ms\s+<= 800\.0 ms\s+\+\S+ ms\s+3\.\.5\s+PASS", table)
    assert re.search(r"tiny\s+too strict\s+region=a\s+.*FAIL", table)
    assert f"--seed {rep.failures[0].worst_seed} --set replications=1" in table

    out = tmp_path / "junit" / "check.xml"
    junit_xml(rep, out)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    (suite,) = root
    assert suite.get("name") == "tiny" and suite.get("file") == str(path)
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"p99_latency <= 800ms", "too strict", "success_rate >= 0.99"}
    assert cases["p99_latency <= 800ms"].find("failure") is None
    failure = cases["too strict"].find("failure")
    worst = rep.failures[0]
    assert failure.get("message") == (
        f"p50_latency = {worst.fmt(worst.measured)}, bound <= 1.0 ms, margin "
        f"{worst.fmt(worst.margin, signed=True)} [region=a], worst seed {worst.worst_seed}; "
        "1 more failing group(s)")
    assert "reproduce: worst seed" in failure.text and "fedsim run" in failure.text
    props = {p.get("name"): p.get("value") for p in cases["too strict"].iter("property")}
    assert set(props) == {"region=a: measured", "region=b: measured"}


def test_sweep_points_are_checked_one_by_one(tiny):
    path = tiny("- p99_latency <= 1h\n",
                extra="sweep:\n  grid:\n    router.strategy: [least_latency, random]\n")
    rep = run_and_check(path, duration="10s")
    assert rep.points == ["router.strategy=least_latency", "router.strategy=random"]
    assert [o.group for o in rep.outcomes] == ["point router.strategy=least_latency",
                                               "point router.strategy=random"]
    assert rep.duration == 10.0 and "duration=10s" in rep.overrides
    assert "--set router.strategy=random" in rep.outcomes[1].reproduce


def test_duration_never_lengthens_and_scales_the_warmup(tiny):
    path = tiny("- p99_latency <= 1h\n", extra="warmup: 4s\n")
    rep = run_and_check(path, duration="10s")
    assert rep.overrides == ["duration=10s", "warmup=2s"]
    assert run_and_check(path, duration="1h").overrides == []


def test_check_main_exit_codes_table_and_junit(tiny, tmp_path, capsys):
    good = tiny("- p99_latency <= 800ms\n- playbook\n", name="good.yaml")
    bad = tiny("- p50_latency <= 1ms\n", name="bad.yaml")
    none = tiny("", name="none.yaml")
    junit = tmp_path / "out.xml"
    assert check_main([str(good)], junit=str(junit)) == 0
    out = capsys.readouterr().out
    assert "all 5 assertion(s) passed" in out and "routing_latency" in out
    assert ET.parse(junit).getroot().get("tests") == "5"
    assert check_main([str(good), str(bad)], overrides=["replications=2"]) == 1
    out = capsys.readouterr().out
    assert "1 of 6 assertion(s) failed" in out and "overrides replications=2" in out
    assert "measured:  p50_latency" in out and "margin:" in out and "reproduce: worst seed" in out
    assert check_main([str(bad)], quiet=True) == 1
    assert "p50_latency <= 1ms: FAIL" in capsys.readouterr().out
    assert check_main([str(none)]) == 2
    assert "no assertions" in capsys.readouterr().err
    assert check_main([str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert check_main([str(good)], overrides=["router.strategy=nope"]) == 2


def test_library_assertions_hold_at_the_ci_duration():
    """The scenario files the repository's pytest run checks (pyproject: fedsim_scenarios)."""
    rep = run_and_check(LIBRARY / "quickstart.yaml", duration="30s")
    assert rep.passed, format_table(rep)
    assert len(rep.by_assertion()) >= 4


# ----------------------------------------------------------------------------- A beats B


def test_assert_beats_is_a_paired_one_sided_test():
    base = LIBRARY / "base" / "three_regions.yaml"
    res = assert_beats(base, "mean_latency", a={"strategy": "power_of_two_choices"},
                       b={"strategy": "least_latency"}, seeds=4, duration="20s")
    assert res.a_beats_b and res.mean_diff < 0 and res.seeds == [7, 8, 9, 10]
    d = np.array(res.a_values) - np.array(res.b_values)
    assert res.p_value == pytest.approx(stats.ttest_rel(res.a_values, res.b_values,
                                                        alternative="less").pvalue)
    assert res.mean_diff == pytest.approx(d.mean())
    with pytest.raises(AssertionError, match="A does not beat B"):
        assert_beats(base, "mean_latency", a={"strategy": "least_latency"},
                     b={"strategy": "power_of_two_choices"}, seeds=4, duration="20s")
    with pytest.raises(ValueError, match="at least 2 seeds"):
        assert_beats(base, "p99_latency", a={}, b={}, seeds=1)
    with pytest.raises(ValueError, match="did you mean 'p99_latency'"):
        assert_beats(base, "p99_latncy", a={}, b={})
