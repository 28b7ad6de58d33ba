"""The pytest plugin (fedsim.pytest_plugin, registered as the ``pytest11`` entry point
``fedsim``), exercised with pytest's own ``pytester``: collection on and off, passing and
failing scenario files, failure messages, JUnit XML, the ini options and the fixtures."""

from __future__ import annotations

pytest_plugins = ["pytester"]

import re
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points

import pytest

# Loaded here, outside pytester's runs: pytester restores sys.modules after each in-process
# run, and numpy cannot be imported twice in one process.
import fedsim.analysis  # noqa: F401
import fedsim.pytest_plugin  # noqa: F401
import fedsim.runner  # noqa: F401
import fedsim.testing  # noqa: F401
from conftest import tiny_yaml

def run(pytester, *args):
    """An in-process pytest run; hypothesis's plugin (1 s of start-up) is not needed there."""
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


PASSING = """
    - p99_latency <= 800ms
    - success_rate >= 0.99
    - {name: regional p50, check: "p50_latency <= 500ms", by: region}
    - privacy_violations == 0
    """
FAILING = """
    - p99_latency <= 800ms
    - {name: too fast, check: "p50_latency <= 5ms"}
    - {name: per region, check: "p50_latency.upper95 <= 5ms", by: region, critical: "<= 1s"}
    """


@pytest.fixture
def scenarios(pytester):
    """A scenarios/ directory in the pytester project with a passing and a failing file."""
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "ok.yaml").write_text(tiny_yaml(PASSING))
    (pytester.path / "scenarios" / "slow.yaml").write_text(tiny_yaml(FAILING))
    (pytester.path / "scenarios" / "plain.yaml").write_text(tiny_yaml())  # no assertions
    (pytester.path / "scenarios" / "notes.txt").write_text("assertions: not a scenario")
    return pytester.path / "scenarios"


def test_registered_as_a_pytest11_entry_point():
    (ep,) = [e for e in entry_points(group="pytest11") if e.name == "fedsim"]
    assert ep.value == "fedsim.pytest_plugin"


def test_collection_is_off_unless_configured(pytester, scenarios):
    result = run(pytester, "scenarios")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.no_fnmatch_line("*ok.yaml*")


def test_one_item_per_assertion_named_after_it(pytester, scenarios):
    result = run(pytester, "scenarios", "--fedsim-scenarios", "scenarios",
                                "--collect-only", "-q")
    assert result.ret == 0
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [
        "scenarios/ok.yaml::p99_latency <= 800ms",
        "scenarios/ok.yaml::success_rate >= 0.99",
        "scenarios/ok.yaml::regional p50",
        "scenarios/ok.yaml::privacy_violations == 0",
        "scenarios/slow.yaml::p99_latency <= 800ms",
        "scenarios/slow.yaml::too fast",
        "scenarios/slow.yaml::per region",
    ]


@pytest.mark.parametrize("on_ci", [False, True], ids=["terminal", "ci"])
def test_passing_and_failing_scenarios(pytester, scenarios, monkeypatch, on_ci):
    # On CI (env CI or BUILD_NUMBER set) pytest prints each failure's whole message again in the
    # short summary; elsewhere it trims it to one line. Both must read well.
    for var in ("CI", "BUILD_NUMBER"):
        monkeypatch.delenv(var, raising=False)
    if on_ci:
        monkeypatch.setenv("CI", "true")
    result = run(pytester, "scenarios", "--fedsim-scenarios", "scenarios", "-rf")
    result.assert_outcomes(passed=5, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    # the readable failure: measured value, bound, margin, seed to reproduce
    result.stdout.fnmatch_lines([
        "*_ too fast (slow.yaml) _*",
        "p50_latency = * ms, bound <= 5.0 ms, margin -* ms, worst seed *",
        "scenarios/slow.yaml: 'too fast' failed in 1 of 1 group(s); seeds 3..5",
        "too fast: FAIL  (p50_latency <= 5ms)",
        "  measured:  p50_latency = * ms (mean of 3 seeds); per seed 3: * ms, 4: * ms, 5: * ms",
        "  bound:     <= 5.0 ms",
        "  margin:    -* ms, violated by *% of the bound",
        "  reproduce: worst seed *: fedsim run scenarios/slow.yaml --seed * --set replications=1",
    ])
    result.stdout.fnmatch_lines([
        "*_ per region (slow.yaml) _*",
        "p50_latency.upper95 = * ms, bound <= 5.0 ms, margin * [[]region=a], worst seed *; "
        "1 more failing group(s)",
        "*'per region' failed in 2 of 2 group(s)*",
        "per region [[]region=a]: FAIL  (p50_latency.upper95 <= 5ms; critical p50_latency <= 1s)",
        "  measured:  p50_latency.upper95 = * ms (upper bound of the 95% t-interval over 3 "
        "seeds, mean * ms); per seed *",
        "per region [[]region=b]: FAIL*",
    ])
    assert "Traceback" not in out and "fedsim/testing.py" not in out
    # the short summary starts with the numbers
    assert re.search(r"FAILED scenarios/slow\.yaml::too fast - p50_latency = \S+ ms, bound", out)
    # the scenario ran once per file, not once per item: three failing groups, three reports
    failures = out.split("= FAILURES =", 1)[1].split("short test summary info", 1)[0]
    assert failures.count("reproduce: worst seed") == 3
    summary = out.split("short test summary info", 1)[1]
    assert summary.count("reproduce: worst seed") == (3 if on_ci else 0)


def test_ini_options_and_reduced_duration(pytester, scenarios):
    pytester.makeini("""
        [pytest]
        fedsim_scenarios = scenarios
        fedsim_duration = 10s
        """)
    result = run(pytester, "scenarios", "-k", "too")
    result.assert_outcomes(failed=1, deselected=6)
    result.stdout.fnmatch_lines([
        "*seeds 3..5; overrides duration=10s warmup=0s",
        "*--set duration=10s --set warmup=0s",
    ])
    # the command line wins over the ini file; --fedsim-set applies to every scenario
    result = run(pytester, "scenarios", "-k", "too", "--fedsim-duration", "5s",
                                "--fedsim-set", "replications=2")
    result.stdout.fnmatch_lines(["*seeds 3, 4; overrides replications=2 duration=5s warmup=0s"])
    result = run(pytester, "scenarios", "-k", "too", "--fedsim-duration", "full")
    result.stdout.fnmatch_lines(["*'too fast' failed in 1 of 1 group(s); seeds 3..5"])


def test_pyproject_configuration_and_marker(pytester, scenarios):
    pytester.makepyprojecttoml("""
        [tool.pytest.ini_options]
        testpaths = ["scenarios"]
        fedsim_scenarios = ["scenarios/ok.yaml"]
        addopts = "--strict-markers"
        """)
    result = run(pytester, "-m", "fedsim")
    result.assert_outcomes(passed=4)
    assert "slow.yaml" not in result.stdout.str()


def test_junit_xml_has_one_testcase_per_assertion_with_the_numbers(pytester, scenarios):
    junit = pytester.path / "junit.xml"
    run(pytester, "scenarios", "--fedsim-scenarios", "scenarios", f"--junitxml={junit}")
    root = ET.parse(junit).getroot()
    all_cases = list(root.iter("testcase"))
    assert len(all_cases) == 7
    assert {c.get("classname") for c in all_cases} == {"scenarios.ok.yaml", "scenarios.slow.yaml"}
    cases = {c.get("name"): c for c in all_cases if c.get("classname") == "scenarios.slow.yaml"}
    cases.update({c.get("name"): c for c in all_cases if c.get("classname") == "scenarios.ok.yaml"})
    failure = cases["too fast"].find("failure")
    assert re.match(r"p50_latency = \S+ ms, bound <= 5\.0 ms, margin -\S+ ms, worst seed \d",
                    failure.get("message"))
    assert "reproduce: worst seed" in failure.text
    assert cases["regional p50"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in cases["regional p50"].iter("property")}
    assert set(props) == {"region=a: measured", "region=b: measured"}
    assert re.match(r"\S+ ms \(<= 500\.0 ms, margin \+\S+ ms\)", props["region=a: measured"])


def test_a_broken_scenario_file_is_a_collection_error_with_its_position(pytester):
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "bad.yaml").write_text(tiny_yaml("- p99_latncy <= 800ms\n"))
    result = run(pytester, "scenarios", "--fedsim-scenarios", "scenarios")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "*ERROR collecting scenarios/bad.yaml*",
        "scenario file does not load:",
        "*bad.yaml:*:5: error: assertions[[]0].check: unknown metric 'p99_latncy'; did you "
        "mean 'p99_latency'?*",
    ])


def test_inherited_assertions_are_collected(pytester):
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "base.yaml").write_text(tiny_yaml("- p99_latency <= 800ms\n"))
    (pytester.path / "scenarios" / "child.yaml").write_text(
        "extends: base.yaml\nname: child\nreplications: 1\n")
    result = run(pytester, "scenarios", "--fedsim-scenarios", "scenarios", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*child.yaml::p99_latency <= 800ms PASSED*"])


def test_fixtures_for_hand_written_tests(pytester):
    pytester.makefile(".yaml", tiny=tiny_yaml())
    pytester.makepyfile(test_routing="""
        import pytest

        def test_run_and_assert(fedsim_run, fedsim_assert_slo):
            results = fedsim_run("tiny.yaml", duration="10s")
            assert [r.seed for r in results] == [3, 4, 5]
            fedsim_assert_slo(results, "success_rate >= 0.9")
            fedsim_assert_slo(results, "p99_latency <= 2s", by="region")
            with pytest.raises(AssertionError, match="margin"):
                fedsim_assert_slo(results, "p99_latency <= 1ms")

        def test_a_dict_scenario(fedsim_run, fedsim_assert_slo):
            import yaml
            data = yaml.safe_load(open("tiny.yaml"))
            results = fedsim_run(data, replications=1, router__strategy="random")
            assert results.scenario.router.strategy == "random"
            fedsim_assert_slo(results[0], "privacy_violations == 0")

        def test_baseline(fedsim_baseline, tmp_path):
            fedsim_baseline.check("tiny.yaml", "tiny-baseline.json", duration="10s")

        def test_beats(fedsim_assert_beats):
            fedsim_assert_beats("tiny.yaml", "load_imbalance_cv", a={"strategy": "random"},
                                b={"strategy": "least_latency"}, duration="10s")
        """)
    # first run: the baseline does not exist yet: written, the test skipped
    result = run(pytester, "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*baseline tiny-baseline.json did not exist: written now, commit it*"])
    assert (pytester.path / "tiny-baseline.json").exists()
    # then compared against; --fedsim-update-baselines rewrites it
    run(pytester).assert_outcomes(passed=4)
    run(pytester, "--fedsim-update-baselines").assert_outcomes(passed=4)
