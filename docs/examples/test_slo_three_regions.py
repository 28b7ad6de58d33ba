"""Hand-written routing checks for the worked example of docs/regression_testing.md.

    pytest docs/examples/test_slo_three_regions.py        # the fixtures come with fedsim
"""

from pathlib import Path

HERE = Path(__file__).parent
SCENARIO = HERE / "slo_three_regions.yaml"


def test_no_regression_against_the_committed_baseline(fedsim_baseline):
    # compares with the committed file; writes it if missing (--fedsim-update-baselines: rewrite)
    fedsim_baseline.check(SCENARIO, HERE / "slo_three_regions.baseline.json", tolerance=0.05)


def test_power_of_two_choices_beats_the_reference_on_p99(fedsim_assert_beats):
    # one-sided paired t-test over the scenario's 5 seeds (common random numbers)
    fedsim_assert_beats(SCENARIO, "p99_latency", a={"strategy": "power_of_two_choices"},
                        b={"strategy": "least_latency"}, confidence=0.95)


def test_every_region_keeps_its_tail(fedsim_run, fedsim_assert_slo):
    results = fedsim_run(SCENARIO, duration="1m")
    fedsim_assert_slo(results, "p99_latency <= 700ms", by="region")
