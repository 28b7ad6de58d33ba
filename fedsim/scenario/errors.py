"""Scenario-file errors that point at the file, line, column and key path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Issue:
    """One problem in a scenario: where it is and what is wrong."""

    file: str
    line: Optional[int]
    column: Optional[int]
    path: str
    message: str
    hint: Optional[str] = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        text = f"{where}: error: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ScenarioError(Exception):
    """A scenario could not be loaded; ``issues`` says every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)


def format_path(path: tuple) -> str:
    """``('nodes', 3, 'gpus')`` -> ``nodes[3].gpus``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
