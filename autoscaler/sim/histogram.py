"""Latency histograms of the aggregate model: 10 ms bins up to a minute, weighted by (fractional) requests."""

import math

import numpy as np

from autoscaler.sim.traces import Floats

BIN_S = 0.01
BINS = 6000


def bin_of(seconds: float) -> int:
    return min(BINS - 1, int(seconds / BIN_S)) if math.isfinite(seconds) else BINS - 1


def histogram(seconds: Floats) -> Floats:
    """Shares of the values per bin (all zeros for no values); the last bin holds everything beyond."""
    if len(seconds) == 0:
        return np.zeros(BINS)
    index = np.minimum(BINS - 1, (seconds.clip(0, BIN_S * BINS) / BIN_S).astype(np.int64))
    return np.bincount(index, minlength=BINS) / len(seconds)


def p99(hist: Floats) -> float:
    total = hist.sum()
    if total <= 0:
        return math.nan
    return float(np.searchsorted(np.cumsum(hist), 0.99 * total) + 1) * BIN_S
