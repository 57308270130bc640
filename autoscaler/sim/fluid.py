"""The aggregate serving model, for traces too long to replay per request (a week is 27M requests).

Per time step each replica serves its share of the step's expected arrivals at the rate the iteration-time model
gives (ITL = t0 / (1 - rho)), up to its maximum rate (batch and KV-cache bound); what it cannot serve waits. The
SLO accounting takes the per-request model's steady-state attainment at the replica's rate (`capacity.py`: the
per-request spread of TTFT and TPOT a mean cannot show), times the share of the length population whose prefill
still fits the TTFT objective after the step's queue wait.
"""

from dataclasses import dataclass

import numpy as np

from autoscaler.accelerators import TokenProfile
from autoscaler.sim import capacity
from autoscaler.sim.histogram import BINS, bin_of, histogram, p99
from autoscaler.sim.profiles import prefills_s
from autoscaler.sim.requests import refused
from autoscaler.sim.serving import Outcome, Replica, Routing, Slo, length_shares
from autoscaler.sim.traces import Envelope, Lengths

STEP_S = 5.0


@dataclass
class _Accounts:
    """The SLO accounting of one replica profile: its attainment curve, its prefill times, and the arrivals by
    queue-wait bin and by the curve's rate they met."""

    curve: capacity.Curve
    prefill: np.ndarray  # sorted prefill times of the length population
    fits_idle: float  # how many of them fit the TTFT objective with no queue wait
    waits: np.ndarray
    at_rate: np.ndarray


class FluidReplica:
    def __init__(
        self,
        profile: TokenProfile,
        mean_in: float,
        mean_out: float,
        slo_rate: float,
        prompt_shares: np.ndarray,
        generation_shares: np.ndarray,
    ) -> None:
        self.profile = profile
        self.speed = slo_rate  # requests/s within the SLO: its weight in routing
        self.inp = mean_in
        self.out = mean_out
        self.context = mean_in + mean_out / 2
        self.work = profile.work_s(mean_in, mean_out)
        self.max_rate = capacity.max_rate(profile, mean_in, mean_out)
        self.backlog = 0.0
        self.batch = 0.0
        self.completed = 0.0
        self.itl_sum = 0.0
        self.tokens = 0.0
        self.tpot_met = 0.0
        self.prefix_queries = 0.0  # the aggregate model has no prefix blocks
        self.prefix_hits = 0.0
        self.prompt_shares = prompt_shares  # of the length population, per prompt bucket
        self.prompt_counts = np.zeros(len(prompt_shares))
        self.generation_shares = generation_shares  # the same by output length
        self.generation_counts = np.zeros(len(generation_shares))
        self.prompt_sum = 0.0
        self.generation_sum = 0.0
        self.ttft_met = 0.0
        self.prefill_sum = 0.0
        self.prefill_count = 0.0

    def kv_usage(self) -> float:
        return min(1.0, self.batch * self.context / self.profile.kv_capacity)

    def waiting(self) -> float:
        return self.backlog

    def idle(self) -> bool:
        return self.backlog < 1e-6

    def step(self, arrivals: float, dt: float) -> tuple[float, float]:
        """Serve for dt; returns (queue wait of this step's arrivals, requests/s served)."""
        rate = min((self.backlog + arrivals) / dt, self.max_rate)
        self.backlog = max(0.0, self.backlog + arrivals - rate * dt)
        itl = self.profile.t0_s / max(1e-3, 1 - rate * self.work)
        self.batch = rate * self.out * itl
        served = rate * dt
        self.completed += served
        self.prompt_counts += served * self.prompt_shares
        self.generation_counts += served * self.generation_shares
        self.prompt_sum += served * self.inp
        self.generation_sum += served * self.out
        self.tokens += served * self.out
        self.itl_sum += served * self.out * itl
        return self.backlog / self.max_rate, rate


class FluidWorkload:
    step_s = STEP_S

    def __init__(
        self, trace: Envelope, slo: Slo, routing: Routing, seed: int, context_tokens: int | None = None
    ) -> None:
        self.trace = trace
        self.slo = slo
        self.routing = routing
        self.duration_s = trace.duration_s
        self.seed = seed
        # Expected arrivals per step: Poisson noise is part of the per-request curve; counting it here again would
        # count it twice.
        self.arrivals = trace.rate_at(np.arange(0.0, self.duration_s, STEP_S) + STEP_S / 2) * STEP_S
        # The share of the population longer than the context is refused at once, as vLLM refuses it.
        too_long = refused(trace.lengths, context_tokens)
        self.refused_share = float(too_long.mean())
        self.population = trace.lengths.pick(np.nonzero(~too_long)[0]) if too_long.any() else trace.lengths
        self.prompt_shares = length_shares(self.population.input)
        self.generation_shares = length_shares(self.population.output)
        self.mean_in = float(self.population.input.mean())
        self.mean_out = float(self.population.output.mean())
        self.held = 0.0  # arrivals with no replica to go to
        self.requests = 0.0
        self.served = 0.0
        self.ok = 0.0
        self.accounts: dict[TokenProfile, _Accounts] = {}

    def new_replica(self, profile: TokenProfile, slo_rate: float) -> FluidReplica:
        if profile not in self.accounts:
            c = capacity.curve(profile, self.population, self.slo, self.routing, self.seed)
            prefill = np.sort(prefills_s(profile, self.population.input.astype(np.float64)))
            fits_idle = float(np.searchsorted(prefill, self.slo.ttft_s, side="right"))
            self.accounts[profile] = _Accounts(c, prefill, fits_idle, np.zeros(BINS), np.zeros(len(c.rates)))
        return FluidReplica(profile, self.mean_in, self.mean_out, slo_rate, self.prompt_shares, self.generation_shares)

    def step(self, t: float, serving: list[Replica], draining: list[Replica]) -> None:
        dt = self.step_s
        k = int(t // dt)
        arrivals = float(self.arrivals[k]) if k < len(self.arrivals) else 0.0
        self.requests += arrivals
        arrivals *= 1 - self.refused_share
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
            wait, rate = r.step(share, dt)
            attainment, tpot_within, nearest = self.accounts[r.profile].curve.read(rate)
            self.served += r.completed - before
            r.tpot_met += (r.completed - before) * tpot_within
            # The curve has both objectives together: TTFT's share as if the two were independent.
            r.ttft_met += (r.completed - before) * (attainment / tpot_within if tpot_within > 0 else 0.0)
            r.prefill_sum += (r.completed - before) * self.accounts[r.profile].curve.prefill_at(rate)
            r.prefill_count += r.completed - before
            if share > 0:
                self._account(self.accounts[r.profile], share, wait, attainment, nearest)

    def _shares(self, live: list[FluidReplica], pool: float) -> list[float]:
        """Least outstanding work: fill replicas so their backlog per unit of speed within the SLO evens out (each
        GPU type loaded in proportion to what it serves within the SLO); else an equal split."""
        if self.routing == "round-robin":
            return [pool / len(live)] * len(live)
        speed = sum(r.speed for r in live)
        total = pool + sum(r.backlog for r in live)
        want = [max(0.0, total * r.speed / speed - r.backlog) for r in live]
        scale = pool / sum(want) if sum(want) > 0 else 0.0
        return [w * scale for w in want]

    def _account(self, acc: _Accounts, arrivals: float, wait: float, attainment: float, nearest: int) -> None:
        acc.waits[bin_of(wait)] += arrivals
        acc.at_rate[nearest] += arrivals
        ok = arrivals * attainment
        if wait > 0:
            fits = float(np.searchsorted(acc.prefill, self.slo.ttft_s - wait, side="right"))
            ok *= fits / acc.fits_idle if acc.fits_idle > 0 else 0.0
        self.ok += ok

    def outcome(self) -> Outcome:
        ttft = np.zeros(BINS)
        tpot = np.zeros(BINS)
        for acc in self.accounts.values():
            ttft += np.convolve(acc.waits, histogram(acc.prefill))[:BINS]
            tpot += acc.at_rate @ acc.curve.tpot
        return Outcome(
            requests=round(self.requests),
            ok=self.ok,
            dropped=max(0.0, self.requests * (1 - self.refused_share) - self.served),
            ttft_p99_s=p99(ttft),
            tpot_p99_s=p99(tpot),
            refused=self.requests * self.refused_share,
        )

    def waiting_upstream(self) -> float:
        return self.held

    def demand(self, window_s: float) -> list[float]:
        starts = np.arange(0.0, self.duration_s, window_s)
        return [float(x) for x in self.trace.rate_at(starts + window_s / 2)]

    @property
    def lengths(self) -> Lengths:
        return self.population
