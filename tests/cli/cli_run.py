"""Run the ``fedsim`` command in a subprocess, as a user would (shared by the CLI tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fedsim(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``fedsim ARGS`` in ``cwd``; fails the test on a Python traceback (every error the
    command reports must be a clean message)."""
    proc = subprocess.run([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc
