"""What a replica of a variant serves within the SLO: the per-request model's attainment at a steady load.

A pool of replicas behind the router is fed Poisson arrivals with the workload's own request lengths at a grid of
rates, and every request's TTFT and TPOT is measured. Three users:

- the oracle and static-peak size replicas by it (the largest rate that still meets the attainment target), so the
  lower bound is a mix that serves the SLO, not one sized on the mean request;
- the router weighs each replica by the rate its GPU type serves within the SLO;
- the aggregate model counts the SLO (and the replicas' TPOT histogram) by it, so a week replayed in aggregate sees
  the per-request spread (batch-size swings, prefills stalling decodes) that a per-request replay shows.
"""

from dataclasses import dataclass

import numpy as np

from autoscaler.accelerators import TokenProfile
from autoscaler.sim.histogram import histogram
from autoscaler.sim.requests import RequestWorkload
from autoscaler.sim.serving import Routing, Slo
from autoscaler.sim.traces import Floats, Lengths, Requests

TARGET = 0.99  # the SLO attainment the benchmark asks for: replicas are sized, and weighted by the router, at it
POOL = 4  # replicas behind the router in a probe: pooled enough to show routing, small enough to stay cheap
PROBE_S = 300.0  # arrivals over at least this long, and for at least COUNTED requests after the warm-up
COUNTED = 3000  # a 99% attainment read from fewer requests is mostly noise
WARMUP_S = 60.0  # replicas start empty: arrivals before this are not counted
TAIL_S = 120.0  # after the last arrival; what is unfinished then counts as a miss
GRID = np.linspace(0.04, 1.0, 25)  # probed rates, as fractions of the replica's batch-bound maximum


@dataclass(frozen=True)
class Curve:
    rates: Floats  # requests/s a replica receives
    attainment: Floats  # share of those requests within both objectives (never rising with the rate)
    tpot_within: Floats  # share of them whose TPOT met its objective (what vLLM's TPOT histogram shows)
    tpot: Floats  # per rate: histogram of the requests' TPOT (bins of histogram.BIN_S)
    prefill_s: Floats  # per rate: the requests' mean prefill time (first chunk scheduled to first token)

    def read(self, rate: float) -> tuple[float, float, int]:
        """At a rate: the attainment and the TPOT share (linear between the evenly spaced probed rates, 0 beyond the
        last), and the nearest probed rate's index."""
        x = max(0.0, (rate - float(self.rates[0])) / float(self.rates[1] - self.rates[0]))
        k = int(x)
        nearest = min(len(self.rates) - 1, round(x))
        if k + 1 < len(self.rates):
            w = x - k
            a, t = self.attainment, self.tpot_within
            return float(a[k] + w * (a[k + 1] - a[k])), float(t[k] + w * (t[k + 1] - t[k])), nearest
        if k + 1 == len(self.rates) and x == k:
            return float(self.attainment[-1]), float(self.tpot_within[-1]), nearest
        return 0.0, 0.0, nearest

    def prefill_at(self, rate: float) -> float:
        """The mean prefill time at a rate, linear between the probed rates (the last beyond them)."""
        return float(np.interp(rate, self.rates, self.prefill_s))

    def ceiling(self) -> float:
        """The attainment target this GPU type can be held to: 99%, or 1 point below what a lightly loaded replica
        reaches, for populations whose longest prompts can never meet the TTFT objective."""
        return min(TARGET, float(self.attainment[0]) - 0.01)

    def capacity(self, goal: float) -> float:
        """The largest rate a replica takes with attainment >= goal; 0 when even a light load misses it."""
        above = np.nonzero(self.attainment >= goal)[0]
        if not len(above):
            return 0.0
        k = int(above[-1])
        if k + 1 >= len(self.rates):
            return float(self.rates[k])
        a0, a1 = float(self.attainment[k]), float(self.attainment[k + 1])
        share = (a0 - goal) / (a0 - a1) if a0 > a1 else 0.0
        return float(self.rates[k] + share * (self.rates[k + 1] - self.rates[k]))


def slo_rate(profile: TokenProfile, lengths: Lengths, slo: Slo, routing: Routing, seed: int) -> float:
    """Requests/s one replica serves at the attainment it can be held to: its weight in the router."""
    c = curve(profile, lengths, slo, routing, seed)
    return c.capacity(c.ceiling())


def max_rate(profile: TokenProfile, mean_in: float, mean_out: float) -> float:
    """Requests/s of a replica whose batch is full (the smaller of max_num_seqs and what the KV-cache holds)."""
    context = mean_in + mean_out / 2
    batch = min(profile.max_num_seqs, profile.kv_capacity / context)
    return batch / (mean_out * profile.t0_s + batch * profile.work_s(mean_in, mean_out))


_cache: dict[tuple[bytes, bytes, int, TokenProfile, Slo, Routing, int], Curve] = {}


def curve(profile: TokenProfile, lengths: Lengths, slo: Slo, routing: Routing, seed: int) -> Curve:
    """The attainment curve of a profile for a length population (computed once per process and population)."""
    hashes = hash(lengths.hashes) if lengths.hashes is not None else 0
    key = (lengths.input.tobytes(), lengths.output.tobytes(), hashes, profile, slo, routing, seed)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    top = max_rate(profile, float(lengths.input.mean()), float(lengths.output.mean()))
    rates = GRID * top
    probes = [_probe(profile, lengths, slo, routing, float(r), seed) for r in rates]
    attainment = np.minimum.accumulate(np.array([a for a, _, _, _ in probes]))
    within = np.minimum.accumulate(np.array([w for _, w, _, _ in probes]))
    result = Curve(
        rates, attainment, within, np.array([h for _, _, h, _ in probes]), np.array([f for _, _, _, f in probes])
    )
    _cache[key] = result
    return result


def _probe(
    profile: TokenProfile, lengths: Lengths, slo: Slo, routing: Routing, rate: float, seed: int
) -> tuple[float, float, Floats, float]:
    """At one rate: the attainment, the TPOT share, the TPOT histogram and the mean prefill time."""
    rng = np.random.default_rng(seed)
    duration = max(PROBE_S, WARMUP_S + COUNTED / (rate * POOL))
    n = int(rng.poisson(rate * POOL * duration))
    arrival = np.sort(rng.random(n) * duration)
    size = len(lengths.input)
    # With prefix blocks, requests follow each other as in the trace (from a random start), so that the prefixes
    # they share arrive as close together as they did: the probe sees the trace's cache hits.
    pick = (rng.integers(0, size) + np.arange(n)) % size if lengths.hashes is not None else rng.integers(0, size, n)
    workload = RequestWorkload(Requests(arrival, lengths.pick(pick)), slo, routing, seed=seed)
    pool = [workload.new_replica(profile, rate) for _ in range(POOL)]
    t = 0.0
    while t < duration + TAIL_S:
        workload.step(t, list(pool), [])
        t += workload.step_s
    counted = arrival >= WARMUP_S
    done = ~np.isnan(workload.tpot) & counted
    ok = done & (workload.ttft <= slo.ttft_s) & (workload.tpot <= slo.tpot_s)
    counted_n = max(1, int(counted.sum()))
    within = done & (workload.tpot <= slo.tpot_s)
    prefill = sum(r.prefill_sum for r in pool) / max(1.0, sum(r.prefill_count for r in pool))
    return float(ok.sum()) / counted_n, float(within.sum()) / counted_n, histogram(workload.tpot[done]), prefill
