"""The aggregate serving model, for traces too long to replay per request (a week is 27M requests).

Per time step each replica serves its share of the step's Poisson arrivals at the rate the iteration-time model
gives (ITL = t0 / (1 - rho)), up to its maximum rate (batch and KV-cache bound); what it cannot serve waits. The
SLO accounting is the expectation over the trace's length population: of the requests arriving in a step on a
replica, those whose queue wait plus prefill fits the TTFT objective count, when the step's ITL fits the TPOT one.
"""

import math

import numpy as np

from autoscaler.sim.profiles import Profile
from autoscaler.sim.serving import Outcome, Replica, Routing, Slo
from autoscaler.sim.traces import Envelope

STEP_S = 5.0
BIN_S = 0.01  # latency histograms: 10 ms bins up to a minute
BINS = 6000


def _bin(seconds: float) -> int:
    return min(BINS - 1, int(seconds / BIN_S)) if math.isfinite(seconds) else BINS - 1


class FluidReplica:
    def __init__(self, profile: Profile, mean_in: float, mean_out: float) -> None:
        self.profile = profile
        self.out = mean_out
        self.context = mean_in + mean_out / 2
        self.work = profile.work_s(mean_in, mean_out)
        batch = min(profile.max_num_seqs, profile.kv_capacity / self.context)
        self.max_rate = batch / (mean_out * profile.t0_s + batch * self.work)
        self.backlog = 0.0
        self.batch = 0.0
        self.completed = 0.0
        self.itl_sum = 0.0
        self.tokens = 0.0

    def kv_usage(self) -> float:
        return min(1.0, self.batch * self.context / self.profile.kv_capacity)

    def waiting(self) -> float:
        return self.backlog

    def idle(self) -> bool:
        return self.backlog < 1e-6

    def step(self, arrivals: float, dt: float) -> tuple[float, float]:
        """Serve for dt; returns (queue wait of this step's arrivals, inter-token latency)."""
        rate = min((self.backlog + arrivals) / dt, self.max_rate)
        self.backlog = max(0.0, self.backlog + arrivals - rate * dt)
        itl = self.profile.t0_s / max(1e-3, 1 - rate * self.work)
        self.batch = rate * self.out * itl
        served = rate * dt
        self.completed += served
        self.tokens += served * self.out
        self.itl_sum += served * self.out * itl
        return self.backlog / self.max_rate, itl


class FluidWorkload:
    step_s = STEP_S

    def __init__(self, trace: Envelope, slo: Slo, routing: Routing, seed: int) -> None:
        self.trace = trace
        self.slo = slo
        self.routing = routing
        self.duration_s = trace.duration_s
        self.rng = np.random.default_rng(seed)
        self.mean_in = float(trace.lengths.input.mean())
        self.mean_out = float(trace.lengths.output.mean())
        self.held = 0.0  # arrivals with no replica to go to
        self.requests = 0
        self.served = 0.0
        self.ok = 0.0
        self.wait_hist: dict[int, np.ndarray] = {}  # per profile: arrivals by queue-wait bin
        self.prefill_hist: dict[int, np.ndarray] = {}
        self.prefill_sorted: dict[int, np.ndarray] = {}
        self.tpot_hist = np.zeros(BINS)

    def new_replica(self, profile: Profile) -> FluidReplica:
        key = id(profile)
        if key not in self.wait_hist:
            prefill = np.sort(profile.t0_s + profile.k_tok_s * self.trace.lengths.input.astype(np.float64))
            self.prefill_sorted[key] = prefill
            self.prefill_hist[key] = np.bincount(
                np.minimum(BINS - 1, (prefill / BIN_S).astype(np.int64)), minlength=BINS
            ) / len(prefill)
            self.wait_hist[key] = np.zeros(BINS)
        return FluidReplica(profile, self.mean_in, self.mean_out)

    def step(self, t: float, serving: list[Replica], draining: list[Replica]) -> None:
        dt = self.step_s
        arrivals = (
            0
            if t >= self.duration_s
            else int(self.rng.poisson(float(self.trace.rate_at(np.array([t + dt / 2]))[0]) * dt))
        )
        self.requests += arrivals
        live = [r for r in serving if isinstance(r, FluidReplica)]
        pool = self.held + arrivals
        for r in draining:
            if isinstance(r, FluidReplica):
                pool += r.backlog
                r.backlog = 0.0
        if not live:
            self.held = pool
            return
        self.held = 0.0
        for r, share in zip(live, self._shares(live, pool), strict=True):
            before = r.completed
            wait, itl = r.step(share, dt)
            self.served += r.completed - before
            self._account(r.profile, share, wait, itl)

    def _shares(self, live: list[FluidReplica], pool: float) -> list[float]:
        """Least outstanding work: fill replicas so their backlog per unit of speed evens out; else equal split."""
        if self.routing == "round-robin":
            return [pool / len(live)] * len(live)
        speed = sum(r.max_rate for r in live)
        total = pool + sum(r.backlog for r in live)
        want = [max(0.0, total * r.max_rate / speed - r.backlog) for r in live]
        scale = pool / sum(want) if sum(want) > 0 else 0.0
        return [w * scale for w in want]

    def _account(self, profile: Profile, arrivals: float, wait: float, itl: float) -> None:
        if arrivals <= 0:
            return
        key = id(profile)
        self.wait_hist[key][_bin(wait)] += arrivals
        self.tpot_hist[_bin(itl)] += arrivals
        if itl <= self.slo.tpot_s:
            prefill = self.prefill_sorted[key]
            self.ok += arrivals * float(np.searchsorted(prefill, self.slo.ttft_s - wait, side="right")) / len(prefill)

    def outcome(self) -> Outcome:
        ttft = np.zeros(BINS)
        for key, waits in self.wait_hist.items():
            ttft += np.convolve(waits, self.prefill_hist[key])[:BINS]
        return Outcome(
            requests=self.requests,
            ok=self.ok,
            dropped=max(0.0, self.requests - self.served),
            ttft_p99_s=_p99(ttft),
            tpot_p99_s=_p99(self.tpot_hist),
        )

    def demand(self, window_s: float) -> list[float]:
        starts = np.arange(0.0, self.duration_s, window_s)
        return [float(x) for x in self.trace.rate_at(starts + window_s / 2)]

    def mean_lengths(self) -> tuple[float, float]:
        return self.mean_in, self.mean_out


def _p99(hist: np.ndarray) -> float:
    total = hist.sum()
    if total <= 0:
        return math.nan
    return float(np.searchsorted(np.cumsum(hist), 0.99 * total) + 1) * BIN_S
