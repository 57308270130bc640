"""The lower bound as a curve: the oracle's cost at every attainment it can reach, so a policy is compared with
what a perfect planner pays for the same service level, not for a different one.

The oracle is run once per attainment goal (each GPU type sized at the goal on its per-request curve); the bound
at an attainment is the cheapest run that reached at least it, so the curve never falls as attainment rises, and
between runs it is interpolated linearly.
"""

from dataclasses import dataclass

import numpy as np

from autoscaler.sim import oracle
from autoscaler.sim.run import Cluster, Result, workload_for
from autoscaler.sim.setup import Setup
from autoscaler.sim.traces import Trace

# Attainment goals the oracle is sized at, up to what the best GPU type reaches lightly loaded (so the curve reaches
# static-peak's attainment wherever a perfect planner can).
GOALS = (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Bound:
    attainment: tuple[float, ...]  # rising
    cost_usd: tuple[float, ...]  # never falling

    def cost_at(self, attainment: float) -> float | None:
        """The bound's cost at an attainment; None outside what the oracle's runs reached (no bound there: above,
        nothing reached it; below, the oracle's minimum replicas already serve more)."""
        if not self.attainment or not self.attainment[0] <= attainment <= self.attainment[-1]:
            return None
        return float(np.interp(attainment, self.attainment, self.cost_usd))

    def ratio(self, result: Result) -> float | None:
        """A policy's cost over the bound's at the policy's own attainment."""
        cost = self.cost_at(result.slo_attainment)
        return result.cost_usd / cost if cost else None

    def describe(self, result: Result) -> str:
        """The ratio for a report: exact on the curve; below it, the bound costs at most its lowest run, so the
        ratio is at least the one against that run; above it there is no bound."""
        ratio = self.ratio(result)
        if ratio is not None:
            return f"{ratio:.2f}x"
        if self.attainment and result.slo_attainment < self.attainment[0] and self.cost_usd[0] > 0:
            return f">= {result.cost_usd / self.cost_usd[0]:.2f}x"
        return "-"


def envelope(points: list[tuple[float, float]]) -> Bound:
    """The cheapest cost for at least each attainment, from (attainment, cost) runs."""
    kept: list[tuple[float, float]] = []
    for a, c in sorted(points, reverse=True):  # from the highest attainment down
        if not kept or c < kept[-1][1]:
            kept.append((a, c))
    kept.reverse()
    return Bound(tuple(a for a, _ in kept), tuple(c for _, c in kept))


def goals(setup: Setup, trace: Trace) -> list[float]:
    """The sweep: every goal below what the best GPU type reaches lightly loaded, and the oracle's own goal."""
    curves = oracle.variant_curves(setup, workload_for(trace, setup))
    best = max(float(c.attainment[0]) for c in curves)
    return sorted({g for g in GOALS if g < best} | {max(c.ceiling() for c in curves)})


def sweep(setup: Setup, trace: Trace) -> tuple[Bound, list[Result]]:
    """The oracle at every goal, and the bound they make."""
    runs = []
    for goal in goals(setup, trace):
        workload = workload_for(trace, setup)
        runs.append(Cluster(setup, workload).run(oracle.OraclePolicy(setup, workload, goal), None))
    return envelope([(r.slo_attainment, r.cost_usd) for r in runs]), runs
