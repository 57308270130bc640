"""The autoscalers under test. `default` and `wva-v1` are the engine itself, called exactly as the controller
calls it; `hpa` is the Kubernetes HPA on KV-cache usage (REFERENCE section 8); `static-peak` and `oracle` (the
lower bound) are in `oracle.py`."""

import math
from collections import deque
from collections.abc import Mapping
from typing import Protocol

from autoscaler.engine import Memory, Mode, Observation, Shape, Tuning, VariantStatus, decide, replica_capacity
from autoscaler.sim.setup import Setup


class Policy(Protocol):
    name: str
    interval_s: float

    def decide(self, t: float, status: Mapping[str, VariantStatus], obs: Observation) -> dict[str, int]: ...


class EnginePolicy:
    interval_s = 30.0

    def __init__(self, mode: Mode, setup: Setup) -> None:
        self.name = "default" if mode == "default" else "wva-v1"
        self.mode: Mode = mode
        self.setup = setup
        self.memory = Memory()
        self.tuning = Tuning(tpot_slo_s=setup.slo.tpot_s, ttft_slo_s=setup.slo.ttft_s, headroom=setup.spec.headroom)

    def decide(self, t: float, status: Mapping[str, VariantStatus], obs: Observation) -> dict[str, int]:
        specs = [v.spec for v in self.setup.variants]
        decision, self.memory = decide(
            self.mode, specs, self.setup.thresholds, status, obs, self.memory, t, self.tuning
        )
        return decision.targets


class HpaPolicy:
    """HPA on `vllm:kv_cache_usage_perc` (target 0.7) of the variant cheapest per unit of capacity."""

    name = "hpa"
    interval_s = 15.0
    target = 0.7
    tolerance = 0.1
    down_window_s = 300.0

    def __init__(self, setup: Setup) -> None:
        best = min(
            setup.variants,
            key=lambda v: (v.spec.cost / replica_capacity(v.spec.profile, Shape(), Tuning()), v.spec.name),
        )
        self.variant = best.spec
        self.others = {v.spec.name: v.spec.min_replicas for v in setup.variants if v.spec is not best.spec}
        self.recent: deque[tuple[float, int]] = deque()

    def decide(self, t: float, status: Mapping[str, VariantStatus], obs: Observation) -> dict[str, int]:
        v = self.variant
        current = status[v.name].current
        usage = [s.kv for s in obs.samples if s.variant == v.name]
        desired = current
        if usage and current > 0:
            ratio = sum(usage) / len(usage) / self.target
            if abs(ratio - 1) > self.tolerance:
                # Pods without metrics (starting) count as 0% on the way up and 100% on the way down.
                missing = max(0, current - len(usage))
                filled = usage + [0.0 if ratio > 1 else 1.0] * missing
                new_ratio = sum(filled) / len(filled) / self.target
                if (new_ratio - 1) * (ratio - 1) > 0 and abs(new_ratio - 1) > self.tolerance:
                    desired = math.ceil(new_ratio * len(filled))
        desired = min(desired, max(2 * current, current + 4))
        self.recent.append((t, desired))
        while self.recent[0][0] <= t - self.down_window_s:
            self.recent.popleft()
        if desired < current:
            desired = min(current, max(d for _, d in self.recent))
        return {**self.others, v.name: max(1, v.min_replicas, min(v.max_replicas, desired))}


def make(name: str, setup: Setup) -> Policy:
    if name == "default":
        return EnginePolicy("default", setup)
    if name == "wva-v1":
        return EnginePolicy("wva-v1", setup)
    if name == "hpa":
        return HpaPolicy(setup)
    raise ValueError(f"unknown policy {name!r}")
