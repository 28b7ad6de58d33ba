"""Theory validation (issue 7): the formulas of fedsim.validation against known values, and
the quick suite (fedsim's world and strategies against them) run once for the module.

The quick suite: loads 0.5 and 0.8, 20 replications for the single-queue cases and 10 for
the 100-node pools, 1 000 to 23 000 measured customers per replication after a warm-up of
five relaxation times (up to 73 simulated seconds at 0.8) — the exact numbers are printed
in the table's header lines.  Intervals are 99.9 % Student t over the replications, so the
~50 checks of a run do not fail by chance.  It takes 84 s on 2 cores (AMD EPYC; 92 s with
other jobs running; docs/validation.md); the notebook test adds 10-20 s, the module ~110 s.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from itertools import combinations_with_replacement
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, sparse
from scipy.sparse.linalg import spsolve

from fedsim import validation as v

REPO = Path(__file__).resolve().parents[2]
QUICK_BUDGET_S = 240  # the quick suite's target on 2 cores


# =============================================================================== formulas


def _erlang_c_factorials(c: int, a: float) -> float:
    """The textbook Erlang C formula, written independently of fedsim.validation."""
    head = sum(a ** k / math.factorial(k) for k in range(c))
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (head + top)


def test_erlang_c_known_values():
    # c = 2 servers at rho = 0.5 (a = 1): C = 1/3; c = 1 is M/M/1: C = rho
    assert v.erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    for rho in (0.1, 0.5, 0.9):
        assert v.erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)
    assert v.erlang_c(4, 2.8) == pytest.approx(0.42865, abs=5e-5)
    for c, a in [(3, 2.0), (4, 3.2), (10, 8.0), (40, 36.0)]:
        assert v.erlang_c(c, a) == pytest.approx(_erlang_c_factorials(c, a), rel=1e-9)
    # large c stays finite and below 1 (the factorial form overflows at c = 200)
    assert 0 < v.erlang_c(200, 180.0) < 1
    with pytest.raises(ValueError):
        v.erlang_c(2, 2.0)


def test_mm1_and_mmc_quantiles():
    lam, mu = 8.0, 10.0
    assert v.mm1_sojourn_mean(lam, mu) == pytest.approx(0.5)
    for p in (0.5, 0.9, 0.99):
        assert v.mm1_sojourn_quantile(lam, mu, p) == pytest.approx(-math.log(1 - p) / (mu - lam))
    c, lam = 4, 32.0
    pw = v.erlang_c(c, lam / mu)
    assert v.mmc_mean_wait(c, lam, mu) == pytest.approx(pw / (c * mu - lam))
    assert v.mmc_mean_sojourn(c, lam, mu) == pytest.approx(pw / (c * mu - lam) + 1 / mu)
    for p in (0.9, 0.99):
        q = v.mmc_wait_quantile(c, lam, mu, p)
        assert pw * math.exp(-(c * mu - lam) * q) == pytest.approx(1 - p)  # P(W > q) = 1 - p
    # below the atom at zero the quantile is 0 (at rho = 0.5, c = 4: P(wait) = 0.174)
    assert v.mmc_wait_quantile(4, 20.0, mu, 0.5) == 0.0


def test_pollaczek_khinchine():
    # M/D/1 at rho = 0.5 with S = 0.1 s: Wq = rho S / (2 (1 - rho)) = 0.05 s
    assert v.pk_mean_wait(5.0, 0.1, 0.01) == pytest.approx(0.05)
    # M/D/1 waits half as long as M/M/1 (E[S^2] = 2 / mu^2): Wq(M/M/1) = rho / (mu - lam)
    assert v.pk_mean_wait(8.0, 0.1, 2 * 0.01) == pytest.approx(0.8 / (10 - 8))
    assert v.pk_mean_wait(8.0, 0.1, 0.01) == pytest.approx(0.5 * 0.8 / (10 - 8))
    with pytest.raises(ValueError):
        v.pk_mean_wait(10.0, 0.1, 0.01)


def test_gim1_root():
    mu = 10.0
    # one node (Erlang-1 = Poisson arrivals): GI/M/1 is M/M/1, sigma = rho
    for rho in (0.2, 0.5, 0.8, 0.9, 0.95):
        lam = rho * mu
        assert v.gim1_sigma(v.erlang_laplace(1, lam), mu, 1 / lam) == pytest.approx(rho, abs=1e-12)
        assert v.gim1_sojourn_mean(1, lam, mu) == pytest.approx(1 / (mu - lam), rel=1e-10)
    # four round-robin nodes: sigma solves sigma = (lam / (lam + mu (1 - sigma)))^4 and is
    # below rho (Erlang-4 gaps are more regular than Poisson ones)
    lam = 4 * 0.8 * mu
    s = v.gim1_sigma(v.erlang_laplace(4, lam), mu, 4 / lam)
    assert s == pytest.approx((lam / (lam + mu * (1 - s))) ** 4, abs=1e-13)
    assert 0 < s < 0.8
    # independently: the fixed-point iteration from 0 increases to the smallest root
    x = 0.0
    for _ in range(5000):
        x = (lam / (lam + mu * (1 - x))) ** 4
    assert s == pytest.approx(x, abs=1e-10)
    # with more nodes the gaps tend to D/M/1: sigma = exp(-mu (1 - sigma) / lam_node)
    n, rho = 400, 0.8
    s = v.gim1_sigma(v.erlang_laplace(n, n * rho * mu), mu, 1 / (rho * mu))
    d = optimize.brentq(lambda x: math.exp(-(1 - x) / rho) - x, 0, 1 - 1e-9)
    assert s == pytest.approx(d, abs=2e-3)


def test_supermarket_mean_field_known_values():
    # Mitzenmacher (2001), power of two choices at lambda = 0.5: 1.2657; 0.9: 2.6141
    assert v.supermarket_mean_sojourn(0.5, 2) == pytest.approx(1.2657, abs=1e-4)
    assert v.supermarket_mean_sojourn(0.9, 2) == pytest.approx(2.6141, abs=1e-4)
    assert v.supermarket_mean_sojourn(0.5, 3) == pytest.approx(1 + 0.5 ** 3 + 0.5 ** 12, rel=1e-6)
    assert v.supermarket_mean_sojourn(0.5, 2, mu=10.0) == pytest.approx(0.12657, abs=1e-5)
    # refined value tends to the mean field as N grows, from above
    r = [v.supermarket_refined(0.8, 2, n)["refined"] for n in (50, 100, 1000, 10 ** 6)]
    assert r[0] > r[1] > r[2] > r[3] > v.supermarket_mean_sojourn(0.8, 2)
    assert r[3] == pytest.approx(v.supermarket_mean_sojourn(0.8, 2), rel=1e-5)


def _exact_sqd(n: int, d: int, load: float, k: int) -> float:
    """Exact mean sojourn (in service times) of N servers, power-of-d with d distinct samples,
    from the stationary distribution of the occupancy CTMC truncated at k jobs per server."""
    states = [tuple(np.bincount(s, minlength=k + 1)) for s in
              combinations_with_replacement(range(k + 1), n)]
    index = {s: i for i, s in enumerate(states)}
    rows, cols, vals = [], [], []
    total = math.comb(n, d)
    for i, m in enumerate(states):
        at_least = np.concatenate((np.cumsum(m[::-1])[::-1], [0]))
        for j in range(k + 1):
            p = (math.comb(int(at_least[j]), d) - math.comb(int(at_least[j + 1]), d)) / total
            if p > 0 and j < k:  # an arrival joins a queue of j
                t = list(m)
                t[j] -= 1
                t[j + 1] += 1
                rows.append(i), cols.append(index[tuple(t)]), vals.append(n * load * p)
            if j >= 1 and m[j]:  # a departure from a queue of j
                t = list(m)
                t[j] -= 1
                t[j - 1] += 1
                rows.append(i), cols.append(index[tuple(t)]), vals.append(float(m[j]))
    q = sparse.csr_matrix((vals, (rows, cols)), shape=(len(states),) * 2)
    q = q - sparse.diags(np.asarray(q.sum(axis=1)).ravel())
    a = q.T.tolil()
    a[0, :] = 0.0
    a[0, 0] = 1.0
    b = np.zeros(len(states))
    b[0] = 1.0
    pi = spsolve(a.tocsc(), b)
    pi /= pi.sum()
    jobs = np.array([sum(j * c for j, c in enumerate(m)) for m in states])
    return float(pi @ jobs) / n / load


def test_refined_mean_field_matches_exact_small_systems():
    """The O(1/N) term is right: against the exact CTMC of small systems the refined value
    is several times closer than the mean field, and its error shrinks like 1/N^2."""
    errs = {}
    for n, d, load, k in [(4, 2, 0.8, 16), (5, 2, 0.8, 13), (5, 3, 0.8, 12)]:
        exact = _exact_sqd(n, d, load, k)
        r = v.supermarket_refined(load, d, n)
        mf_err, ref_err = exact - r["mean_field"], exact - r["refined"]
        assert mf_err > 0 and ref_err > 0
        assert ref_err < 0.3 * mf_err, (n, d, exact, r)
        errs[(n, d)] = ref_err
    # O(1/N^2): N^2 x error nearly constant from N = 4 to 5 (measured 1.64 and 1.60)
    assert 16 * errs[(4, 2)] == pytest.approx(25 * errs[(5, 2)], rel=0.1)


def test_jsq_bounds_are_ordered():
    for load in (0.5, 0.8, 0.9):
        lam = load * 100 * v.MU
        low = v.mmc_mean_sojourn(100, lam, v.MU)
        assert 1 / v.MU < low < v.supermarket_mean_sojourn(load, 2, v.MU)


def test_judge_semantics():
    case = v.CASES["jsq_bounds"]
    sub = pd.DataFrame({"customers": [10, 10], "not_success": [0, 0], "sim_seconds": [1.0, 1.0],
                        "warmup": [2.0, 2.0]})

    def judge(check, lo, hi, theory=1.0, tol=0.01):
        m = v.Metric("m", "mean_sojourn", theory, tol, check)
        s = pd.Series({"mean": (lo + hi) / 2, "ci_low": lo, "ci_high": hi})
        return v._judge(case, 0.5, m, s, sub, True)["passed"]

    assert judge("=", 0.995, 1.02) and judge("=", 1.005, 1.05) and not judge("=", 1.02, 1.05)
    assert not judge("=", 0.5, 1.5)  # contains the theory but far too wide
    assert judge(">=", 0.90, 0.995) and not judge(">=", 0.90, 0.98)
    assert judge("<=", 1.005, 1.1) and not judge("<=", 1.02, 1.1)


# =============================================================================== the quick suite


@pytest.fixture(scope="module")
def quick():
    started = time.perf_counter()
    df = v.run_validation(quick=True)
    df.attrs["measured_wall"] = time.perf_counter() - started
    print("\n" + v.format_table(df))
    return df


def test_quick_suite_passes(quick):
    failed = quick[~quick["passed"]]
    assert failed.empty, "theory checks failed:\n" + v.format_table(failed)


def test_quick_suite_covers_every_case_and_load(quick):
    assert list(quick.columns) == v.COLUMNS
    for name in v.CASES:
        for load in v.LOADS_QUICK:
            rows = quick[(quick["case"] == name) & (quick["load"] == load)]
            assert len(rows) >= 2, (name, load)
            assert (rows["metric"] == v.LITTLE.name).sum() == 1  # Little's law on every run
            plan = v.CASES[name].plan(load, quick=True)
            assert (rows["seeds"] == plan.seeds).all() and plan.seeds >= 10
            # measured customers: the plan's, up to Poisson noise in the arrival count
            assert (rows["customers"] >= 0.95 * plan.customers * plan.seeds).all()
    eq = quick[quick["check"] == "="]
    assert (eq["ci_low"] <= eq["simulated"]).all() and (eq["simulated"] <= eq["ci_high"]).all()
    # the stated tolerances: 1 % of theory, or the finite-N allowance of the N -> inf value
    rel = quick["tolerance"] / quick["theory"].abs()
    assert (rel <= 0.03).all()
    mf = quick["metric"].str.contains("mean field, N->inf")
    assert np.allclose(rel[~mf], 0.01) and (rel[mf] > 0.01).all()


def test_quick_suite_runtime(quick):
    wall = quick.attrs["measured_wall"]
    print(f"quick suite: {wall:.0f} s wall, {quick.attrs['workers']} worker(s), "
          f"{os.cpu_count()} CPUs")
    if wall > QUICK_BUDGET_S * 2 / min(os.cpu_count() or 1, 2):
        warnings.warn(f"the quick theory suite took {wall:.0f} s (target {QUICK_BUDGET_S} s on 2 "
                      "cores)")


def test_format_and_entry_point(quick, tmp_path, monkeypatch, capsys):
    text = v.format_table(quick)
    for name in v.CASES:
        assert name in text
    assert "PASS" in text and "99.9% CI" in text
    monkeypatch.setattr(v, "run_validation", lambda **kw: quick)
    out = tmp_path / "res"
    assert v.validate_theory_main(True, str(out), None) == 0
    printed = capsys.readouterr().out
    assert "checks passed" in printed
    back = pd.read_csv(out / "validation.csv")
    assert len(back) == len(quick) and list(back.columns) == v.COLUMNS
    meta = json.loads((out / "validation.json").read_text())
    assert meta["meta"]["quick"] is True and len(meta["results"]) == len(quick)
    bad = quick.copy()
    bad.loc[bad.index[0], "passed"] = False
    monkeypatch.setattr(v, "run_validation", lambda **kw: bad)
    assert v.validate_theory_main(True, str(tmp_path / "one.csv"), None) == 1
    assert (tmp_path / "one.csv").exists()


def test_validation_leaves_the_strategy_registry_alone():
    from fedsim.federation import STRATEGIES

    before = list(STRATEGIES)
    stats = v._replicate(("pod3_supermarket", 0.5, 7, 1000))  # in this process
    assert stats["customers"] > 900 and stats["not_success"] == 0
    assert list(STRATEGIES) == before


def test_unknown_case_is_an_error():
    with pytest.raises(ValueError, match="unknown case"):
        v.run_validation(quick=True, cases=["mm2"])
    assert v.validate_theory_main(True, None, ["mm2"]) == 2


# =============================================================================== the notebook


NOTEBOOK = REPO / "notebooks" / "04_validation.ipynb"
#: Two cheap cases at the quick size: the notebook's code paths (run, table, plots, asserts)
#: in 10-20 s; the full quick suite is the fixture above.
NOTEBOOK_PARAMETERS = 'QUICK = True\nCASES = ["md1_pk", "gim1_round_robin"]'


def test_notebook_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "QUICK = False" in code[0].source
    assert any("assert " in c.source for c in code)


def _kernel_name(tmp_path: Path, monkeypatch) -> str:
    """``python3`` running this interpreter (with fedsim installed)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    if argv and (argv[0] in ("python", "python3") or os.path.exists(argv[0])
                 and os.path.samefile(argv[0], sys.executable)):
        return "python3"
    spec = tmp_path / "kernels" / "fedsim-validation"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fedsim tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("JUPYTER_PATH")])]))
    return "fedsim-validation"


def test_notebook_runs_quick(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("# injected by tests/validation/test_theory.py\n"
                                     + NOTEBOOK_PARAMETERS)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, cell)
    client = nbclient.NotebookClient(nb, kernel_name=_kernel_name(tmp_path, monkeypatch),
                                     timeout=600, resources={"metadata": {"path": str(REPO)}})
    started = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"04_validation.ipynb: a cell raised:\n{err}", pytrace=False)
    print(f"04_validation.ipynb (quick, 2 cases): {time.perf_counter() - started:.0f} s")
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if "image/png" in o.get("data", {}))
    assert images >= 2
