"""The seed's saturation analysis (WVA v1), exactly: is the model short of capacity, and is one replica fewer safe?

Per replica the inputs are peaks over the last minute. Both autoscaler modes use it: `wva-v1` acts on it alone,
`default` keeps it as a guardrail around its capacity plan.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.api import Thresholds


@dataclass(frozen=True)
class Load:
    """One replica's peak KV-cache usage (0..1) and waiting queue over the last minute."""

    kv: float
    queue: float


@dataclass(frozen=True)
class Saturation:
    replicas: int
    non_saturated: int
    avg_spare_kv: float
    avg_spare_queue: float
    scale_up: bool
    scale_down_safe: bool

    def describe(self) -> str:
        return (
            f"{self.non_saturated}/{self.replicas} replicas below thresholds, "
            f"average spare KV {self.avg_spare_kv:.2f}, spare queue {self.avg_spare_queue:.2f}"
        )


def is_saturated(load: Load, t: Thresholds) -> bool:
    return load.kv >= t.kv_cache_threshold or load.queue >= t.queue_length_threshold


def analyze(loads: Sequence[Load], t: Thresholds) -> Saturation:
    free = [x for x in loads if not is_saturated(x, t)]
    n = len(free)
    spare_kv = sum(t.kv_cache_threshold - x.kv for x in free) / n if n else 0.0
    spare_q = sum(t.queue_length_threshold - x.queue for x in free) / n if n else 0.0
    up = spare_kv < t.kv_spare_trigger or spare_q < t.queue_spare_trigger
    safe = False
    if n >= 2:
        spread = n / (n - 1)  # the load of n replicas carried by n - 1
        kv_after = t.kv_cache_threshold - (t.kv_cache_threshold - spare_kv) * spread
        q_after = t.queue_length_threshold - (t.queue_length_threshold - spare_q) * spread
        safe = kv_after >= t.kv_spare_trigger and q_after >= t.queue_spare_trigger
    return Saturation(len(loads), n, spare_kv, spare_q, up, safe)
