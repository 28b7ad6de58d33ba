"""pytest plugin: scenario files with ``assertions:`` become tests, one per assertion.

Registered through the ``pytest11`` entry point (installed with fedsim), and inert until
told where the scenarios are, so it never surprises another project::

    # pyproject.toml
    [tool.pytest.ini_options]
    testpaths = ["tests", "scenarios"]      # pytest must walk the directory too
    fedsim_scenarios = "scenarios"          # collect *.yaml / *.yml with assertions under it
    fedsim_duration = "30s"                 # optional: shorten every run (CI)

or on the command line: ``pytest scenarios --fedsim-scenarios scenarios --fedsim-duration 30s``.
Other options: ``--fedsim-set KEY=VALUE`` (an override for every scenario, repeatable) and
``--fedsim-update-baselines`` (the ``fedsim_baseline`` fixture rewrites baseline files).

Each scenario file runs once (every replication and sweep point), when its first item
runs; each assertion is an item named after it (``scenarios/quickstart.yaml::p99_latency <=
800ms``), marked ``fedsim``, failing with the measured value, the bound, the margin and the
seed to reproduce.  A scenario file that does not load is a collection error with its
file:line:column messages.

Fixtures for hand-written tests: ``fedsim_run`` (:func:`fedsim.testing.run_scenario`),
``fedsim_assert_slo`` (:func:`fedsim.testing.assert_slo`), ``fedsim_baseline``
(:class:`BaselineFixture`: ``check``, ``save``, ``compare``), and ``fedsim_assert_beats``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Sequence

import pytest

_ASSERTIONS = re.compile(r"^assertions\s*:", re.M)
_EXTENDS = re.compile(r"^extends\s*:\s*['\"]?([^'\"#\n]+?)['\"]?\s*(?:#.*)?$", re.M)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fedsim", "fedsim scenario assertions")
    group.addoption("--fedsim-scenarios", action="append", default=None, metavar="PATH",
                    help="collect scenario files with assertions: under PATH (a directory or "
                         "file; repeatable).  Overrides the fedsim_scenarios ini option.")
    group.addoption("--fedsim-duration", default=None, metavar="DURATION",
                    help="shorten every scenario run to DURATION (e.g. 30s; never "
                         "lengthens; the warm-up shrinks in proportion; 'full': each "
                         "scenario's own duration).  Overrides the fedsim_duration ini option.")
    group.addoption("--fedsim-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a scenario key for every collected scenario (repeatable)")
    group.addoption("--fedsim-update-baselines", action="store_true", default=False,
                    help="fedsim_baseline.check() rewrites the baseline files instead of "
                         "comparing against them")
    parser.addini("fedsim_scenarios", "directories or files whose scenario YAML files with "
                  "assertions: are collected as tests (empty: collection off)", type="paths",
                  default=[])
    parser.addini("fedsim_duration", "shorten every collected scenario run to this duration "
                  "(e.g. 30s)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fedsim: an SLO assertion of a fedsim scenario file")


def _roots(config: pytest.Config) -> list[Path]:
    cli = config.getoption("fedsim_scenarios")
    if cli:
        return [Path(p).resolve() for p in cli]
    return [Path(p).resolve() for p in config.getini("fedsim_scenarios")]


def _duration(config: pytest.Config) -> Optional[str]:
    """The run length for collected scenarios; None (``full``, ``none``, ``0`` or unset):
    each scenario's own."""
    value = config.getoption("fedsim_duration") or config.getini("fedsim_duration") or ""
    value = str(value).strip()
    return None if value.lower() in ("", "full", "none", "0") else value


def _under(path: Path, roots: Sequence[Path]) -> bool:
    path = path.resolve()
    return any(path == r or r in path.parents for r in roots)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    roots = _roots(parent.config)
    if not roots or not _under(file_path, roots):
        return None
    if not _may_have_assertions(file_path):  # cheap: only files that may have some load
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


def _may_have_assertions(path: Path, depth: int = 0) -> bool:
    """Whether the file, or a file it extends, has a top-level ``assertions:`` key (a text
    check; the file is loaded properly when collected)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if _ASSERTIONS.search(text):
        return True
    m = _EXTENDS.search(text)
    if m is None or depth > 20:
        return False
    return _may_have_assertions((path.parent / m.group(1).strip()).resolve(), depth + 1)


class ScenarioFile(pytest.File):
    """A scenario file: one item per assertion; runs the scenario once, on first use."""

    def collect(self):
        from .testing import prepare

        config = self.config
        self.overrides = list(config.getoption("fedsim_set") or [])
        self.duration = _duration(config)
        prep = prepare(self.path, self.overrides, None, self.duration)
        self._report = None
        self._error: Optional[BaseException] = None
        lines = _assertion_lines(self.path)
        for a in prep.scenario.assertions:
            item = ScenarioAssertion.from_parent(self, name=a.title, spec=a,
                                                 line=lines.get(a.source_index))
            item.add_marker("fedsim")
            yield item

    def report(self):
        """The CheckReport of this file (runs the scenario the first time)."""
        if self._error is not None:
            raise self._error
        if self._report is None:
            from .testing import run_and_check

            try:
                self._report = run_and_check(_display_path(self.path, self.config),
                                             self.overrides, None, self.duration)
            except Exception as err:
                self._error = err
                raise
        return self._report

    def repr_failure(self, excinfo, style=None):
        from .scenario import ScenarioError

        if excinfo.errisinstance(ScenarioError):
            return f"scenario file does not load:\n{excinfo.value}"
        if excinfo.errisinstance(ValueError):
            return f"{self.path}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)


def _display_path(path: Path, config: pytest.Config) -> Path:
    """``path`` relative to where pytest was started when it is below it (shorter messages
    and reproduce commands that work from there), else absolute."""
    start = Path(config.invocation_params.dir).resolve()
    if Path.cwd().resolve() != start:  # a test moved elsewhere: keep the path loadable
        return path
    try:
        return path.resolve().relative_to(start)
    except ValueError:
        return path


def _assertion_lines(path: Path) -> dict[int, int]:
    """0-based line of each item of the file's own assertions: list (not inherited ones)."""
    try:
        from .scenario.source import load_yaml

        data, pos = load_yaml(path)
    except Exception:
        return {}
    out = {}
    items = data.get("assertions") if isinstance(data, dict) else None
    if isinstance(items, list):
        for i in range(len(items)):
            where = pos.values.get(("assertions", i))
            if where and where[1] is not None:
                out[i] = where[1] - 1
    return out


class SLOFailure(Exception):
    """An assertion of a scenario file failed (the message is the readable account)."""


class ScenarioAssertion(pytest.Item):
    """One assertion of a scenario file, over every group and sweep point."""

    def __init__(self, *, spec, line: Optional[int] = None, **kw) -> None:
        super().__init__(**kw)
        self.spec = spec
        self.line = line

    def runtest(self) -> None:
        report = self.parent.report()
        outcomes = report.by_assertion().get(self.name, [])
        for o in outcomes:
            label = f"{o.group}: " if o.group else ""
            self.user_properties.append((f"{label}measured", f"{o.fmt(o.measured)} ({o.op} "
                                         f"{o.fmt(o.bound)}, margin {o.fmt(o.margin, signed=True)})"))
        if report.interrupted:
            raise KeyboardInterrupt
        if not report.assertion_passed(self.name):
            raise SLOFailure(report.failure_message(self.name))

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(SLOFailure):
            return str(excinfo.value)
        from .scenario import ScenarioError

        if excinfo.errisinstance(ScenarioError):
            return f"scenario file does not load:\n{excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        # not a suffix of the node id, so pytest shows dots in the name as they are
        return self.path, self.line, f"{self.name} ({self.path.name})"


# ----------------------------------------------------------------------------- fixtures


class BaselineFixture:
    """Baselines from tests.  ``check(scenario, baseline_file)`` compares against the file,
    or writes it when it does not exist yet (the test is then skipped: commit the file) or
    when pytest runs with ``--fedsim-update-baselines``."""

    def __init__(self, update: bool = False) -> None:
        self.update = update

    def save(self, scenario: Any, to_file, **kw) -> dict:
        from .testing import save_baseline

        return save_baseline(scenario, to_file, **kw)

    def compare(self, scenario: Any, against_file, **kw):
        from .testing import compare_baseline

        return compare_baseline(scenario, against_file, **kw)

    def check(self, scenario: Any, baseline_file, tolerance=0.05, confidence: float = 0.95,
              overrides: Sequence[str] = (), duration: Any = None):
        __tracebackhide__ = True
        from .testing import assert_no_regression, save_baseline

        path = Path(baseline_file)
        if self.update or not path.exists():
            save_baseline(scenario, path, overrides=overrides, duration=duration)
            if not self.update:
                pytest.skip(f"baseline {path} did not exist: written now, commit it")
            return None
        return assert_no_regression(scenario, path, tolerance=tolerance, confidence=confidence,
                                    overrides=overrides, duration=duration)


@pytest.fixture
def fedsim_run():
    """``fedsim_run(scenario_file_or_dict_or_Scenario, seed=..., duration=..., **overrides)``
    -> the Results, one per seed (:func:`fedsim.testing.run_scenario`)."""
    from .testing import run_scenario

    return run_scenario


@pytest.fixture
def fedsim_assert_slo():
    """``fedsim_assert_slo(results, "p99_latency <= 800ms", by=None)``
    (:func:`fedsim.testing.assert_slo`)."""
    from .testing import assert_slo

    return assert_slo


@pytest.fixture
def fedsim_assert_beats():
    """``fedsim_assert_beats(scenario, "p99_latency", a={...}, b={...}, confidence=0.95)``
    (:func:`fedsim.testing.assert_beats`)."""
    from .testing import assert_beats

    return assert_beats


@pytest.fixture
def fedsim_baseline(request) -> BaselineFixture:
    """A :class:`BaselineFixture`; ``--fedsim-update-baselines`` rewrites baseline files."""
    return BaselineFixture(update=request.config.getoption("fedsim_update_baselines"))
