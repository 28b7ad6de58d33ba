"""Durations as integer nanoseconds, and their Rust ``Debug`` rendering.

The reference keeps nanosecond-precision ``Duration`` values and truncates to whole
milliseconds in a few precise places (spec Appendix A); plain ``int`` nanoseconds keep
every comparison exact and every truncation explicit.
"""

from __future__ import annotations

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def ms(d: int) -> int:
    """Whole milliseconds of a duration in ns, truncated toward zero (the spec's ``ms(d)``)."""
    return d // NS_PER_MS


def millis(x: float) -> int:
    """A duration of ``x`` milliseconds, in ns."""
    return round(x * NS_PER_MS)


def seconds(x: float) -> int:
    """A duration of ``x`` seconds, in ns."""
    return round(x * NS_PER_S)


def micros(x: float) -> int:
    """A duration of ``x`` microseconds, in ns."""
    return round(x * NS_PER_US)


def _decimal(integer: int, frac: int, divisor: int, unit: str) -> str:
    # Rust prints every significant fractional digit and drops trailing zeros.
    if frac == 0:
        return f"{integer}{unit}"
    digits = []
    while frac and divisor > 1:
        divisor //= 10
        digits.append(str(frac // divisor))
        frac %= divisor
    return f"{integer}.{''.join(digits)}{unit}"


def format_duration(d: int) -> str:
    """Render a duration the way Rust's ``{:?}`` does: ``30s``, ``1.5s``, ``100ms``, ``5µs``, ``0ns``."""
    if d < 0:
        raise ValueError(f"durations are non-negative, got {d} ns")
    secs, nanos = divmod(d, NS_PER_S)
    if secs:
        return _decimal(secs, nanos, NS_PER_S, "s")
    if nanos >= NS_PER_MS:
        return _decimal(nanos // NS_PER_MS, nanos % NS_PER_MS, NS_PER_MS, "ms")
    if nanos >= NS_PER_US:
        return _decimal(nanos // NS_PER_US, nanos % NS_PER_US, NS_PER_US, "µs")
    return f"{nanos}ns"
