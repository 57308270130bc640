"""vLLM's latency histogram edges, with an edge at each of the model's objectives.

vLLM's default TTFT edges have no 2 s edge (1.0 then 2.5), so the share of requests within a 2 s objective could
only be estimated. vLLM (>= 0.11) takes `--custom-histogram-buckets`, whole lists per bucket family: the platform
owns the model servers' arguments and adds each model's objectives to the defaults, so the shares read exactly.
The `inter_token_latency` family covers both the ITL and the per-request TPOT histograms.
"""

import json
import math
from collections.abc import Mapping

# vLLM 0.33.0's defaults (vllm/v1/metrics/buckets.py).
TTFT_EDGES = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0),
    *(2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
)
ITL_EDGES = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)


def with_edge(edges: tuple[float, ...], objective_s: float) -> list[float]:
    return sorted({*edges, objective_s})


def slo_buckets(ttft_s: float, tpot_s: float) -> dict[str, list[float]]:
    """The `--custom-histogram-buckets` value for a model with these objectives."""
    return {
        "time_to_first_token": with_edge(TTFT_EDGES, ttft_s),
        "inter_token_latency": with_edge(ITL_EDGES, tpot_s),
    }


def slo_buckets_arg(ttft_s: float, tpot_s: float) -> str:
    return json.dumps(slo_buckets(ttft_s, tpot_s), separators=(",", ":"))


def share_within(cumulative: Mapping[float, float], limit: float) -> tuple[float, bool] | None:
    """(share of observations <= the limit, whether an edge sits at it) from a cumulative histogram (inf included);
    None without observations. Without an edge at the limit the share is interpolated linearly between its
    neighbouring edges (latencies spread evenly within a bucket)."""
    total = cumulative.get(math.inf, 0.0)
    if total <= 0:
        return None
    edges = sorted(le for le in cumulative if le != math.inf)
    exact = [le for le in edges if math.isclose(le, limit, rel_tol=1e-9)]
    if exact:
        return cumulative[exact[0]] / total, True
    below = [le for le in edges if le < limit]
    above = [le for le in edges if le > limit]
    low, low_count = (below[-1], cumulative[below[-1]]) if below else (0.0, 0.0)
    if not above:
        return low_count / total, False
    high = above[0]
    w = (limit - low) / (high - low)
    return (low_count + w * (cumulative[high] - low_count)) / total, False
