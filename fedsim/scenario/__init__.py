"""fedsim.scenario: scenario files (YAML) — units, ``extends:``, ``--set`` overrides,
``sweep:`` grids, a JSON Schema, and errors that point at file, line, column and key path.

    from fedsim.scenario import load_scenario
    loaded = load_scenario("scenarios/quickstart.yaml", overrides=["router.strategy=random"])
    loaded.scenario, loaded.points, loaded.seeds()
"""

from .errors import Issue, ScenarioError, format_path
from .loader import LoadedScenario, SweepPoint, json_schema, load_scenario, merge, parse_path, set_path

__all__ = ["Issue", "ScenarioError", "LoadedScenario", "SweepPoint", "json_schema",
           "load_scenario", "merge", "parse_path", "set_path", "format_path"]
