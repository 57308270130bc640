"""Policies that know the future: `oracle`, the cheapest integer mix for every 30 s of demand, each replica started
one cold start ahead (the lower bound on cost), and `static-peak`, the best single GPU type sized for the peak.

Both size a replica by the simulator's own per-request model (`capacity.py`): the largest steady rate at which a
replica still serves the attainment target within the SLO, with the workload's request lengths. The target is the
same for every GPU type: 99%, or, where no type reaches it even lightly loaded (prompts whose prefill alone
exceeds the TTFT objective), 1 point below the best type's; a type that cannot reach it is not used beyond its
minimum. They are what a perfect capacity planner would do with the simulator's own numbers.
"""

import math
from collections.abc import Mapping

from autoscaler.engine import Observation, VariantStatus
from autoscaler.planner import Option, cheapest_mix
from autoscaler.sim import capacity
from autoscaler.sim.serving import Workload
from autoscaler.sim.setup import Setup

WINDOW_S = 30.0


UNUSABLE = 1e-9  # the capacity of a GPU type that cannot meet the target: never worth a replica


def variant_curves(setup: Setup, workload: Workload) -> list[capacity.Curve]:
    return [capacity.curve(v.profile, workload.lengths, setup.slo, setup.routing, setup.seed) for v in setup.variants]


def options(setup: Setup, workload: Workload, goal: float | None = None) -> list[Option]:
    """Each variant sized at the attainment `goal` (default: what the best GPU type can be held to), and bounded by
    its GPU type's inventory where the cluster has one: a perfect planner knows what it cannot get."""
    curves = variant_curves(setup, workload)
    goal = max(c.ceiling() for c in curves) if goal is None else goal
    return [
        Option(
            v.spec.name,
            v.spec.cost,
            max(UNUSABLE, c.capacity(goal)),
            v.spec.min_replicas,
            min(v.spec.max_replicas, supply.inventory)
            if (supply := setup.supply.get(v.accelerator))
            else v.spec.max_replicas,
        )
        for v, c in zip(setup.variants, curves, strict=True)
    ]


def demand(workload: Workload) -> list[float]:
    """Arrival rate per 30 s window, the peak of each window and its neighbours (arrivals are bursty within)."""
    rates = workload.demand(WINDOW_S)
    return [max(rates[max(0, k - 1) : k + 2]) for k in range(len(rates))]


class OraclePolicy:
    name = "oracle"
    interval_s = WINDOW_S

    def __init__(self, setup: Setup, workload: Workload, goal: float | None = None) -> None:
        opts = options(setup, workload, goal)
        self.plans = [cheapest_mix(opts, d).counts for d in demand(workload)]
        self.ahead = math.ceil(setup.cold_start_s / WINDOW_S) + 1
        self.warm_start = self._targets(0.0)

    def _targets(self, t: float) -> dict[str, int]:
        k = min(int(t // WINDOW_S), len(self.plans) - 1)
        coming = self.plans[k : k + self.ahead]
        return {name: max(p[name] for p in coming) for name in self.plans[0]}

    def decide(self, t: float, status: Mapping[str, VariantStatus], obs: Observation) -> dict[str, int]:
        return self._targets(t)


class StaticPeakPolicy:
    name = "static-peak"
    interval_s = WINDOW_S

    def __init__(self, setup: Setup, workload: Workload) -> None:
        peak = max(demand(workload))
        sized = {o.name: (max(o.low, math.ceil(peak / o.capacity)), o) for o in options(setup, workload)}
        fits = {n: (k, o) for n, (k, o) in sized.items() if k <= o.high} or sized
        best = min(fits, key=lambda n: (fits[n][0] * fits[n][1].cost, n))
        self.warm_start = {n: (fits[n][0] if n == best else o.low) for n, (_, o) in sized.items()}

    def decide(self, t: float, status: Mapping[str, VariantStatus], obs: Observation) -> dict[str, int]:
        return dict(self.warm_start)
