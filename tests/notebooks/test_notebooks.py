"""The notebooks (issue 5) run top to bottom at reduced size, and are stored without outputs.

Each notebook's first code cell is tagged ``parameters``; the test inserts a cell tagged
``injected-parameters`` right after it with smaller values (the papermill convention, see
``notebooks/README.md``), executes the notebook with nbclient in a ``python3`` kernel running
this interpreter, from the repository root, and fails on the first cell that raises (each
notebook asserts at least one result it shows).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

#: Reduced parameters per notebook (the whole module runs in well under 90 s on 2 cores).
REDUCED = {
    "01_quickstart.ipynb": "DURATION = 60; SEEDS = 3",
    "02_compare_strategies.ipynb": "DURATION = 30; WARMUP = 10; SEEDS = 3; RATE = 150",
    "03_failure_drill.ipynb": "DURATION = 120; OUTAGE_AT = 45; OUTAGE_FOR = 30",
}
CELL_TIMEOUT = 600  # seconds, per cell
#: Notebooks executed by their own test module instead (stored-without-outputs is checked here).
TESTED_ELSEWHERE = {"04_validation.ipynb": "tests/validation/test_theory.py"}


def _read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one code cell must be tagged 'parameters'"
    return tagged[0]


def _runs_this_interpreter(argv: list[str]) -> bool:
    """jupyter_client replaces a bare ``python``/``python3``/``python3.X`` with sys.executable."""
    if not argv:
        return False
    names = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    if argv[0] in names:
        return True
    try:
        return os.path.samefile(argv[0], sys.executable)
    except OSError:
        return False


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """``python3``, made to run this interpreter (with fedsim installed) whatever Jupyter finds."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    if _runs_this_interpreter(argv):
        yield "python3"
        return
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (fedsim tests)", "language": "python"}))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *([old] if old else [])])
    try:
        assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
        yield "python3"
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted([*REDUCED, *TESTED_ELSEWHERE])


@pytest.mark.parametrize("name", sorted([*REDUCED, *TESTED_ELSEWHERE]))
def test_notebook_is_stored_without_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has stored outputs"
            assert cell.execution_count is None, f"cell {i} has an execution count"
    _parameters_index(nb)
    assert any("assert " in c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_notebook_runs_at_reduced_size(name, kernel_name):
    nb = _read(name)
    at = _parameters_index(nb)
    injected = nbformat.v4.new_code_cell(
        "# Parameters injected by tests/notebooks/test_notebooks.py\n" + REDUCED[name])
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)

    client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(REPO)}})
    started = time.perf_counter()
    failure = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        failure = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # IPython colours the traceback
    if failure is not None:  # (outside the except block: no chained, coloured traceback)
        pytest.fail(f"{name}: a cell raised:\n{failure}", pytrace=False)
    elapsed = time.perf_counter() - started

    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{name} cell {i}: {errors[0].ename}: {errors[0].evalue}"
        assert cell.execution_count is not None, f"{name} cell {i} did not run"
    print(f"{name}: {elapsed:.1f} s")
