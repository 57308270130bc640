"""The cheapest replica mix that covers a demand: a small bounded covering problem, solved exactly.

Variants are ranked by cost per unit of capacity, not cost per hour: with AWS prices the cheapest replica is the
worst value. Branch and bound over the variants in that order; a model has a handful of variants, so it is fast.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """A variant as the planner sees it: price and capacity of one replica, and the allowed replica range."""

    name: str
    cost: float
    capacity: float
    low: int
    high: int

    @property
    def cost_per_capacity(self) -> float:
        """What variants are ranked by: price per unit of capacity (infinite for a replica that serves nothing)."""
        return self.cost / self.capacity if self.capacity > 0 else math.inf


@dataclass(frozen=True)
class Mix:
    counts: dict[str, int]
    cost: float
    capacity: float
    covered: bool  # False when even every variant at its maximum falls short


EPSILON = 1e-9  # demand within this of the capacity counts as covered


def cheapest_mix(options: Sequence[Option], demand: float) -> Mix:
    demand = max(0.0, demand - EPSILON)
    ranked = sorted(options, key=lambda o: (o.cost_per_capacity, o.cost, o.name))
    base = {o.name: o.low for o in ranked}
    base_capacity = sum(o.low * o.capacity for o in ranked)
    base_cost = sum(o.low * o.cost for o in ranked)
    if base_capacity >= demand:
        return Mix(base, base_cost, base_capacity, True)
    if sum(o.high * o.capacity for o in ranked) < demand:
        return Mix(
            {o.name: o.high for o in ranked},
            sum(o.high * o.cost for o in ranked),
            sum(o.high * o.capacity for o in ranked),
            False,
        )

    best_cost = math.inf
    best: dict[str, int] = {}
    extra = [0] * len(ranked)

    def search(i: int, residual: float, cost: float) -> None:
        nonlocal best_cost, best
        if residual <= 0:
            if cost < best_cost:
                best_cost, best = cost, {o.name: o.low + e for o, e in zip(ranked, extra, strict=True)}
            return
        if i == len(ranked):
            return
        option = ranked[i]
        # No mix of the remaining variants covers a unit of demand more cheaply than this one does.
        if cost + residual * option.cost / option.capacity >= best_cost:
            return
        most = min(option.high - option.low, math.ceil(residual / option.capacity))
        for n in range(most, -1, -1):
            extra[i] = n
            search(i + 1, residual - n * option.capacity, cost + n * option.cost)
        extra[i] = 0

    search(0, demand - base_capacity, base_cost)
    return Mix(best, best_cost, sum(best[o.name] * o.capacity for o in ranked), True)


def best_value_growth(options: Sequence[Option], demand: float) -> dict[str, int]:
    """Grow from each option's `low` to cover the demand, adding replicas of the best value per unit of capacity
    first (then the next best where a variant reaches its maximum).

    Used for scale-ups: the covering mix that is cheapest this hour adds the cheapest replica for a small deficit
    even when it is poor value, and a ramp made of small deficits then fills up with poor-value replicas.
    """
    counts = {o.name: o.low for o in options}
    residual = demand - EPSILON - sum(o.low * o.capacity for o in options)
    for o in sorted(options, key=lambda o: (o.cost_per_capacity, o.cost, o.name)):
        if residual <= 0:
            break
        added = min(o.high - o.low, math.ceil(residual / o.capacity))
        counts[o.name] += added
        residual -= added * o.capacity
    return counts
