"""A mergeable quantile sketch with a guaranteed relative error (DDSketch-style).

:class:`QuantileSketch` summarises a stream of numbers in logarithmic buckets so that any
quantile can be read back **within a relative error ``alpha``** of the exact value, whatever
the distribution (heavy tails included), in memory that grows with the *range* of the data,
not with its size (Masson, Rim and Lee, "DDSketch: a fast and fully-mergeable quantile sketch
with relative-error guarantees", VLDB 2019).

How it works.  With ``gamma = (1 + alpha) / (1 - alpha)``, a positive value ``x`` goes to
bucket ``k = ceil(log(x) / log(gamma))``, which holds ``(gamma**(k-1), gamma**k]``; a bucket
is read back as ``2 * gamma**k / (gamma + 1)``, which is within ``alpha`` (relative) of every
value in the bucket.  A quantile query finds the bucket that holds the requested order
statistic (by cumulative counts), so the answer is within ``alpha`` of that exact order
statistic; answers are also clamped to the exact minimum and maximum, which keeps the bound,
and the first and last order statistics are returned exactly.
Negative values use a mirrored set of buckets; values with ``|x| <= ZERO`` count as 0
(returned exactly).  Counts are integers, so merging two sketches (adding the counts) gives
exactly the sketch of the union of their data.

The order statistic is the one numpy's ``method="higher"`` picks (and so
``Result.summary()`` and :func:`fedsim.analysis.latency_percentiles`): with ``n`` values
sorted, quantile ``q`` is the value at 0-based index ``ceil((n - 1) * q)``.  So

    ``|sketch.quantile(q) - np.quantile(x, q, method="higher")| <= alpha * |exact value|``

up to floating-point rounding at bucket edges (about 1e-15 relative).

Memory: one int64 per bucket between the smallest and the largest key seen, about
``log(max / min) / (2 * alpha)`` buckets: 2,300 (18 KiB) for latencies from 1 us to 10,000 s
at the default ``alpha = 0.005``.  Adding values is vectorised with numpy (``add`` takes an
array: one ``log``, one ``ceil`` and one ``bincount`` per batch), about 20 ns per value.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence, Union

import numpy as np

DEFAULT_ALPHA = 0.005  # 0.5 % relative error
ZERO = 1e-12           # |x| at or below this counts as 0 (latencies are >= 1 ns when not 0)


class _Store:
    """Dense bucket counts for keys ``offset .. offset + len(counts) - 1``."""

    __slots__ = ("counts", "offset")

    def __init__(self) -> None:
        self.counts = np.zeros(0, np.int64)
        self.offset = 0

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def _cover(self, lo: int, hi: int) -> None:
        """Grow so keys ``lo..hi`` fit."""
        n = len(self.counts)
        if n == 0:
            self.counts = np.zeros(hi - lo + 1, np.int64)
            self.offset = lo
            return
        cur_lo, cur_hi = self.offset, self.offset + n - 1
        if lo >= cur_lo and hi <= cur_hi:
            return
        new_lo, new_hi = min(lo, cur_lo), max(hi, cur_hi)
        grown = np.zeros(new_hi - new_lo + 1, np.int64)
        grown[cur_lo - new_lo:cur_lo - new_lo + n] = self.counts
        self.counts, self.offset = grown, new_lo

    def add_keys(self, keys: np.ndarray) -> None:
        if not len(keys):
            return
        lo, hi = int(keys.min()), int(keys.max())
        self._cover(lo, hi)
        start = lo - self.offset
        self.counts[start:start + hi - lo + 1] += np.bincount(keys - lo, minlength=hi - lo + 1)

    def add_store(self, other: "_Store") -> None:
        if not len(other.counts):
            return
        lo = other.offset
        self._cover(lo, lo + len(other.counts) - 1)
        start = lo - self.offset
        self.counts[start:start + len(other.counts)] += other.counts

    def trimmed(self) -> tuple[int, np.ndarray]:
        """(offset, counts) without leading/trailing empty buckets: a canonical form."""
        nz = np.flatnonzero(self.counts)
        if not len(nz):
            return 0, np.zeros(0, np.int64)
        return self.offset + int(nz[0]), self.counts[nz[0]:nz[-1] + 1].copy()


class QuantileSketch:
    """Quantiles of a stream within relative error ``alpha`` (see the module docstring).

    >>> s = QuantileSketch()            # alpha = 0.005: every quantile within +-0.5 %
    >>> s.add(np.random.default_rng(1).lognormal(size=100_000))
    >>> s.quantile(0.99)                # within 0.5 % of np.quantile(x, 0.99, method="higher")
    ...
    >>> s.merge(other)                  # now the sketch of both streams

    Also exact: ``count``, ``sum``, ``min``, ``max`` (and so ``mean``, up to float rounding
    of the running sum)."""

    __slots__ = ("alpha", "gamma", "_inv_log_gamma", "_pos", "_neg", "zeros", "count", "sum",
                 "min", "max")

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha (relative accuracy) must be in (0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.gamma = (1.0 + alpha) / (1.0 - alpha)
        self._inv_log_gamma = 1.0 / math.log(self.gamma)
        self._pos = _Store()
        self._neg = _Store()
        self.zeros = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # ------------------------------------------------------------------ adding
    def add(self, values: Union[float, Sequence[float], np.ndarray]) -> "QuantileSketch":
        """Add one value or an array of values (finite numbers; NaN or inf raise)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not len(x):
            return self
        if not np.isfinite(x).all():
            raise ValueError("QuantileSketch.add: values must be finite (drop NaN first)")
        pos = x[x > ZERO]
        neg = x[x < -ZERO]
        self._pos.add_keys(self._keys(pos))
        self._neg.add_keys(self._keys(-neg))
        self.zeros += len(x) - len(pos) - len(neg)
        self.count += len(x)
        self.sum += float(x.sum())
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        return self

    def _keys(self, x: np.ndarray) -> np.ndarray:
        return np.ceil(np.log(x) * self._inv_log_gamma).astype(np.int64)

    def merge(self, other: "QuantileSketch") -> "QuantileSketch":
        """Add ``other``'s data to this sketch (same ``alpha`` required); returns self."""
        if other.alpha != self.alpha:
            raise ValueError(f"cannot merge sketches with different alpha "
                             f"({self.alpha} and {other.alpha})")
        self._pos.add_store(other._pos)
        self._neg.add_store(other._neg)
        self.zeros += other.zeros
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def copy(self) -> "QuantileSketch":
        out = QuantileSketch(self.alpha)
        return out.merge(self)

    @classmethod
    def merged(cls, sketches: Iterable["QuantileSketch"],
               alpha: Optional[float] = None) -> "QuantileSketch":
        sketches = list(sketches)
        out = cls(alpha if alpha is not None else (sketches[0].alpha if sketches else DEFAULT_ALPHA))
        for s in sketches:
            out.merge(s)
        return out

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self.count

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def _value(self, key: np.ndarray) -> np.ndarray:
        return 2.0 * np.power(self.gamma, key.astype(np.float64)) / (self.gamma + 1.0)

    def quantiles(self, qs: Sequence[float]) -> np.ndarray:
        """Quantiles ``qs`` (each in [0, 1]) as an array; NaN when the sketch is empty."""
        q = np.asarray(qs, dtype=np.float64).ravel()
        if ((q < 0) | (q > 1) | np.isnan(q)).any():
            raise ValueError(f"quantiles must be in [0, 1], got {list(q)}")
        n = self.count
        if n == 0:
            return np.full(len(q), math.nan)
        # the order statistic numpy's method="higher" picks, with numpy's own arithmetic
        rank = np.ceil((n - 1) * q).astype(np.int64)
        # buckets in increasing value: negatives (largest |x| first), zero, positives
        neg_off, neg_counts = self._neg.offset, self._neg.counts
        pos_off, pos_counts = self._pos.offset, self._pos.counts
        counts = np.concatenate([neg_counts[::-1], [self.zeros], pos_counts])
        cum = np.cumsum(counts)
        idx = np.searchsorted(cum, rank, side="right")  # first bucket with cum > rank
        n_neg = len(neg_counts)
        out = np.empty(len(q))
        is_neg = idx < n_neg
        is_zero = idx == n_neg
        is_pos = idx > n_neg
        if is_neg.any():
            keys = neg_off + (n_neg - 1 - idx[is_neg])
            out[is_neg] = -self._value(keys)
        out[is_zero] = 0.0
        if is_pos.any():
            keys = pos_off + (idx[is_pos] - n_neg - 1)
            out[is_pos] = self._value(keys)
        out = np.clip(out, self.min, self.max)
        out[rank == 0] = self.min  # the extremes are known exactly
        out[rank == n - 1] = self.max
        return out

    def quantile(self, q: float) -> float:
        """Quantile ``q`` in [0, 1] (numpy ``method="higher"`` order statistic, +-alpha)."""
        return float(self.quantiles([q])[0])

    def percentile(self, p: float) -> float:
        """Percentile ``p`` in [0, 100], as ``np.percentile(x, p, method="higher")`` (which
        divides by 100 first), within the relative error ``alpha``."""
        return float(self.quantiles([np.true_divide(p, 100)])[0])

    @property
    def relative_error(self) -> float:
        """The guaranteed relative error of every quantile (``alpha``)."""
        return self.alpha

    def describe_error(self) -> str:
        return f"+-{self.alpha * 100:g} % relative"

    @property
    def buckets(self) -> int:
        """Buckets in use (memory is 8 bytes per bucket between the smallest and largest)."""
        return len(self._pos.counts) + len(self._neg.counts) + 1

    # ------------------------------------------------------------------ comparing / saving
    def state(self) -> dict:
        """A canonical, JSON-friendly form (equal for sketches of the same data)."""
        po, pc = self._pos.trimmed()
        no, nc = self._neg.trimmed()
        return {"alpha": self.alpha, "count": self.count, "zeros": self.zeros,
                "sum": self.sum, "min": self.min if self.count else None,
                "max": self.max if self.count else None,
                "positive": {"offset": po, "counts": pc.tolist()},
                "negative": {"offset": no, "counts": nc.tolist()}}

    @classmethod
    def from_state(cls, state: dict) -> "QuantileSketch":
        out = cls(state["alpha"])
        for name, store in (("positive", out._pos), ("negative", out._neg)):
            s = state[name]
            store.counts = np.asarray(s["counts"], dtype=np.int64)
            store.offset = int(s["offset"])
        out.zeros, out.count, out.sum = int(state["zeros"]), int(state["count"]), float(state["sum"])
        out.min = math.inf if state["min"] is None else float(state["min"])
        out.max = -math.inf if state["max"] is None else float(state["max"])
        return out

    def same_buckets(self, other: "QuantileSketch") -> bool:
        """Same alpha, counts, zeros, min and max (the sum may differ in float rounding)."""
        a, b = self.state(), other.state()
        a.pop("sum"), b.pop("sum")
        return a == b

    def __repr__(self) -> str:
        return (f"QuantileSketch(alpha={self.alpha:g}, count={self.count}, "
                f"buckets={self.buckets})")
