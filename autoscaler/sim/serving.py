"""What the cluster loop needs from a serving model: replicas that export vLLM's gauges and counters, and a
workload that routes arrivals to them and keeps the SLO accounting. Two models implement it: per request
(`requests.py`) and per time step in aggregate (`fluid.py`)."""

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from autoscaler.accelerators import TokenProfile
from autoscaler.sim.traces import Lengths

Routing = Literal["least-work", "round-robin", "prefix-aware"]


@dataclass(frozen=True)
class Slo:
    ttft_s: float
    tpot_s: float


class Replica(Protocol):
    completed: float  # vllm:request_success_total
    itl_sum: float  # vllm:inter_token_latency_seconds_sum
    tokens: float  # vllm:inter_token_latency_seconds_count
    tpot_met: float  # vllm:request_time_per_output_token_seconds_bucket{le=<the TPOT objective>}
    prefix_queries: float  # vllm:prefix_cache_queries_total (prompt tokens looked up)
    prefix_hits: float  # vllm:prefix_cache_hits_total (prompt tokens found cached)
    prompt_counts: NDArray[np.float64]  # vllm:request_prompt_tokens: finished requests per bucket of LENGTH_EDGES
    generation_counts: NDArray[np.float64]  # vllm:request_generation_tokens: the same by output length
    prompt_sum: float  # vllm:request_prompt_tokens_sum (of finished requests)
    generation_sum: float  # vllm:request_generation_tokens_sum
    ttft_met: float  # vllm:time_to_first_token_seconds_bucket{le=<the TTFT objective>}
    prefill_sum: float  # vllm:request_prefill_time_seconds_sum: first chunk scheduled to first token
    prefill_count: float  # vllm:request_prefill_time_seconds_count

    def kv_usage(self) -> float: ...  # vllm:kv_cache_usage_perc

    def waiting(self) -> float: ...  # vllm:num_requests_waiting

    def idle(self) -> bool: ...


# vLLM's request_prompt_tokens and request_generation_tokens buckets: the 1-2-5 series (1, 2, 5, 10, 20, 50, ...),
# here up to a million tokens.
LENGTH_EDGES = np.array([m * 10**k for k in range(7) for m in (1, 2, 5)], dtype=np.float64)


def length_bucket(tokens: float) -> int:
    """The bucket a length is counted in: the first edge at or above it (the last bucket is +Inf)."""
    return int(np.searchsorted(LENGTH_EDGES, tokens, side="left"))


def length_shares(tokens: NDArray[np.int64]) -> NDArray[np.float64]:
    """The share of a population of lengths in each bucket of LENGTH_EDGES (+Inf last)."""
    buckets = np.searchsorted(LENGTH_EDGES, tokens.astype(np.float64), side="left")
    return np.bincount(buckets, minlength=len(LENGTH_EDGES) + 1) / len(buckets)


@dataclass(frozen=True)
class Outcome:
    requests: int
    ok: float  # requests within both objectives
    dropped: float  # arrived but never finished
    ttft_p99_s: float
    tpot_p99_s: float
    refused: float = 0.0  # longer than the model's context: vLLM answers them with an error at once


class Workload(Protocol):
    duration_s: float
    step_s: float

    def new_replica(self, profile: TokenProfile, slo_rate: float) -> Replica:
        """A replica; `slo_rate` (requests/s it serves within the SLO) is its weight in least-work routing."""
        ...

    def step(self, t: float, serving: list[Replica], draining: list[Replica]) -> None:
        """Route the arrivals of [t, t + step) to the serving replicas, then advance every live replica."""

    def outcome(self) -> Outcome: ...

    def waiting_upstream(self) -> float:
        """Requests waiting at the router for a replica to serve them (an endpoint picker's queue)."""
        ...

    def demand(self, window_s: float) -> list[float]:
        """Arrival rate (requests/s) per window: what a forecaster with perfect foresight knows."""
        ...

    @property
    def lengths(self) -> Lengths: ...
