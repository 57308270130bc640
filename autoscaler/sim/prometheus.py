"""What the autoscaler sees of the simulated replicas: vLLM's metrics scraped every 15 s and read the way
`autoscaler/metrics.py` queries Prometheus (`max_over_time[1m]` for the gauges, `rate[1m]` for the counters,
histogram sum over count for the mean inter-token latency and the mean prefill time, `increase[5m]` of the
per-request TPOT histogram), as
the same `Snapshot` the controller collects. Only ready, live pods have series; a removed pod's go with it."""

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from autoscaler.engine import Tuning
from autoscaler.metrics import PodMetrics, Snapshot, shape_of
from autoscaler.sim.serving import LENGTH_EDGES, Replica

SCRAPE_S = 15.0
WINDOW_S = 60.0
FEEDBACK_S = Tuning().feedback_window_s  # the engine's: the counters' increases cover it, as its queries do
RETENTION_S = 600.0


@dataclass(frozen=True)
class _Scrape:
    t: float
    kv: float
    queue: float
    completed: float
    itl_sum: float
    tokens: float
    tpot_met: float
    prefix_queries: float
    prefix_hits: float
    prompts: np.ndarray  # finished requests per prompt bucket, cumulative over time
    generations: np.ndarray  # the same per output-length bucket
    prompt_sum: float
    generation_sum: float
    ttft_met: float
    prefill_sum: float
    prefill_count: float


class Prometheus:
    def __init__(self) -> None:
        self.series: dict[str, deque[_Scrape]] = {}
        self.finished: deque[tuple[float, float]] = deque()  # (t, requests completed by the model so far)
        self.upstream: float | None = None

    def scrape(self, t: float, pods: dict[str, Replica], completed_total: float, upstream: float | None) -> None:
        """One scrape; `upstream` is the endpoint picker's queue (None without a picker). The model's completion
        counter has samples only while it has pods, so its increase over the retention window disappears once
        every pod has been gone that long, as Prometheus shows it."""
        for name, r in pods.items():
            points = self.series.setdefault(name, deque())
            points.append(
                _Scrape(
                    t,
                    r.kv_usage(),
                    r.waiting(),
                    r.completed,
                    r.itl_sum,
                    r.tokens,
                    r.tpot_met,
                    r.prefix_queries,
                    r.prefix_hits,
                    r.prompt_counts.copy(),
                    r.generation_counts.copy(),
                    r.prompt_sum,
                    r.generation_sum,
                    r.ttft_met,
                    r.prefill_sum,
                    r.prefill_count,
                )
            )
            while points[0].t <= t - FEEDBACK_S:
                points.popleft()
        for gone in set(self.series) - set(pods):
            del self.series[gone]
        if pods:
            self.finished.append((t, completed_total))
        while self.finished and self.finished[0][0] < t - RETENTION_S:
            self.finished.popleft()
        self.upstream = upstream

    def snapshot(
        self, t: float, namespace: str, model_id: str, tpot_objective_s: float, ttft_objective_s: float
    ) -> Snapshot:
        """What `autoscaler/metrics.py` would collect from this Prometheus at t: the series of the pods still
        scraped, and the model's finished requests over the retention window."""
        pods = {
            (namespace, name): self._metrics(series, t, model_id, tpot_objective_s)
            for name, series in self.series.items()
        }
        key = (namespace, model_id)
        retention = {key: self.finished[-1][1] - self.finished[0][1]} if len(self.finished) >= 2 else {}
        upstream = {key: self.upstream} if self.upstream is not None else {}
        if not self.series:
            return Snapshot(t, pods, retention, upstream)
        shape = shape_of(self._increases())
        ttft = {key: self._ttft(ttft_objective_s)}
        return Snapshot(
            t,
            pods,
            retention,
            upstream,
            {key: self._lengths("prompts")},
            ttft,
            {key: shape} if shape else {},
            {key: self._lengths("generations")},
        )

    def _ttft(self, objective_s: float) -> dict[float, float]:
        """increase(vllm:time_to_first_token_seconds_bucket[5m]) at the objective's edge (the platform sets one on
        every vLLM server), summed over the pods."""
        return {objective_s: self._grown("ttft_met"), math.inf: self._grown("completed")}

    def _increases(self) -> dict[str, float]:
        """The counters of `metrics.Queries.shape`: their increase over the feedback window, summed over the pods."""
        return {
            "requests": self._grown("completed"),
            "prompt": self._grown("prompt_sum"),
            "generation": self._grown("generation_sum"),
            "cache_queries": self._grown("prefix_queries"),
            "cache_hits": self._grown("prefix_hits"),
        }

    def _grown(self, counter: str) -> float:
        """A counter's increase over the feedback window, summed over the pods."""
        return float(sum(getattr(s[-1], counter) - getattr(s[0], counter) for s in self.series.values()))

    def _lengths(self, counts: str) -> dict[float, float]:
        """increase(vllm:request_prompt_tokens_bucket[5m]) (`prompts`) or of request_generation_tokens
        (`generations`), summed over the pods: requests with <= le tokens."""
        zero = np.zeros(len(LENGTH_EDGES) + 1)
        grown = sum((getattr(s[-1], counts) - getattr(s[0], counts) for s in self.series.values()), zero)
        cumulative = np.cumsum(grown)
        return {
            **{float(e): float(c) for e, c in zip(LENGTH_EDGES, cumulative[:-1], strict=True)},
            math.inf: float(cumulative[-1]),
        }

    @staticmethod
    def _metrics(series: deque[_Scrape], t: float, model_id: str, tpot_objective_s: float) -> PodMetrics:
        points = [p for p in series if p.t > t - WINDOW_S] or [series[-1]]
        first, last = points[0], points[-1]
        span = last.t - first.t
        tokens = last.tokens - first.tokens
        oldest = series[0]
        looked_up = last.prefix_queries - oldest.prefix_queries
        prefilled = last.prefill_count - first.prefill_count
        return PodMetrics(
            kv=max(p.kv for p in points),
            queue=max(p.queue for p in points),
            throughput=(last.completed - first.completed) / span if span > 0 else 0.0,
            itl_s=(last.itl_sum - first.itl_sum) / tokens if tokens > 0 else None,
            last_seen=last.t,
            model_name=model_id,
            tpot_buckets={
                tpot_objective_s: last.tpot_met - oldest.tpot_met,
                math.inf: last.completed - oldest.completed,
            },
            prefix_hit_ratio=(last.prefix_hits - oldest.prefix_hits) / looked_up if looked_up > 0 else None,
            prefill_s=(last.prefill_sum - first.prefill_sum) / prefilled if prefilled > 0 else None,
        )
