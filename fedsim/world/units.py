"""Quantities with units, as scenario files write them: ``250ms``, ``30s``, ``5m``, ``2h``,
``120/s``, ``3000/min``, ``5%``.  Plain numbers are seconds, per-second rates and fractions."""

from __future__ import annotations

import math
import re
from typing import Any

_NUM = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_DURATION = re.compile(rf"^\s*{_NUM}\s*(ns|us|µs|μs|ms|s|sec|m|min|h|d)\s*$")
_RATE = re.compile(rf"^\s*{_NUM}\s*/\s*(ms|s|sec|m|min|h|d)\s*$")
_PERCENT = re.compile(rf"^\s*{_NUM}\s*%\s*$")

SECONDS_PER = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
               "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*(ns|us|µs|μs|ms|s|sec|m|min|h|d)\s*$"
RATE_PATTERN = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*/\s*(ms|s|sec|m|min|h|d)\s*$"
PERCENT_PATTERN = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*%\s*$"


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool):
        raise ValueError(f"expected {what}, found a boolean ({v})")
    if isinstance(v, (int, float)):
        if math.isnan(v):
            raise ValueError(f"expected {what}, found NaN")
        return float(v)
    raise ValueError(f"expected {what}, found {v!r}")


def parse_duration(v: Any) -> float:
    """Seconds from a number (seconds) or a string with a unit (``250ms``, ``2h``)."""
    if isinstance(v, str):
        m = _DURATION.match(v)
        if not m:
            raise ValueError(f"malformed duration {v!r}: expected a number with a unit "
                             "(ns, us, ms, s, m, h, d), e.g. '250ms', '30s', '5m'")
        return float(m.group(1)) * SECONDS_PER[m.group(2)]
    return _number(v, "a duration (seconds, or a string like '250ms')")


def parse_rate(v: Any) -> float:
    """Events per second from a number or a string like ``120/s``, ``3000/min``."""
    if isinstance(v, str):
        m = _RATE.match(v)
        if not m:
            raise ValueError(f"malformed rate {v!r}: expected e.g. '120/s', '3000/min', '10/h'")
        return float(m.group(1)) / SECONDS_PER[m.group(2)]
    return _number(v, "a rate (per second, or a string like '120/s')")


def parse_fraction(v: Any) -> float:
    """A fraction from a number or a percentage string (``5%`` -> 0.05)."""
    if isinstance(v, str):
        m = _PERCENT.match(v)
        if not m:
            raise ValueError(f"malformed percentage {v!r}: expected e.g. '5%' or a number")
        return float(m.group(1)) / 100.0
    return _number(v, "a fraction (or a percentage like '5%')")


def parse_quantity(v: Any) -> Any:
    """Convert a string with any recognised unit to its number; anything else unchanged.
    Used inside free-form specs (distributions, arrivals) whose parameters are numbers."""
    if isinstance(v, str):
        if _DURATION.match(v):
            return parse_duration(v)
        if _RATE.match(v):
            return parse_rate(v)
        if _PERCENT.match(v):
            return parse_fraction(v)
    return v


def convert_spec(spec: Any) -> Any:
    """Recursively apply :func:`parse_quantity` to the values of a spec (dict keys,
    ``kind`` and file paths are left alone)."""
    if isinstance(spec, dict):
        return {k: (v if k in ("kind", "path", "column") else convert_spec(v)) for k, v in spec.items()}
    if isinstance(spec, list):
        return [convert_spec(v) for v in spec]
    return parse_quantity(spec)
