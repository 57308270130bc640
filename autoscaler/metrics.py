"""Prometheus -> per-replica samples, for every model at once: a constant number of queries per cycle.

Series are grouped by (namespace, pod) and later matched to live pods, so metrics of deleted pods (still visible
under `max_over_time` for a minute) never count, and a model-name mismatch is reported instead of ignored.
"""

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from autoscaler.engine import Shape, Tuning

PodKey = tuple[str, str]  # (namespace, pod)
ModelKey = tuple[str, str]  # (namespace, served model name)

BY_POD = "namespace, pod"
TPOT_WINDOW = f"{Tuning().feedback_window_s:.0f}s"
# Peaks over one minute as WVA reads them; TGI's queue stands in for vLLM's waiting requests on TGI pods.
QUERIES = {
    "kv": f"max by ({BY_POD}) (max_over_time(vllm:kv_cache_usage_perc[1m]))"
    f" or max by ({BY_POD}) (max_over_time(vllm:gpu_cache_usage_perc[1m]))",
    "queue": f"max by ({BY_POD}) (max_over_time(vllm:num_requests_waiting[1m]))"
    f" or max by ({BY_POD}) (max_over_time(tgi_queue_size[1m]))",
    "running": f"max by ({BY_POD}) (vllm:num_requests_running)",
    "throughput": f"sum by ({BY_POD}) (rate(vllm:request_success_total[1m]))",
    "itl": f"sum by ({BY_POD}) (rate(vllm:inter_token_latency_seconds_sum[1m]))"
    f" / sum by ({BY_POD}) (rate(vllm:inter_token_latency_seconds_count[1m]) > 0)",
    "last_seen": f"max by ({BY_POD}) (timestamp(vllm:num_requests_waiting))"
    f" or max by ({BY_POD}) (timestamp(tgi_queue_size))",
    "model": f"max by ({BY_POD}, model_name) (vllm:num_requests_waiting)",
    "generation_tps": f"sum by ({BY_POD}) (rate(vllm:generation_tokens_total[1m]))",
    # KV-cache capacity: the info gauge carries it in its labels (blocks x tokens per block).
    "kv_tokens": f"max by ({BY_POD}, num_gpu_blocks, block_size) (vllm:cache_config_info)",
    # Requests finished per bucket of vLLM's per-request TPOT histogram over the feedback window (vLLM >= 0.10).
    "tpot": f"sum by ({BY_POD}, le) (increase(vllm:request_time_per_output_token_seconds_bucket[{TPOT_WINDOW}]))",
    # The share of prompt tokens found in the prefix cache over the same window (vLLM V1 counts tokens).
    "prefix_hit": f"sum by ({BY_POD}) (increase(vllm:prefix_cache_hits_total[{TPOT_WINDOW}]))"
    f" / sum by ({BY_POD}) (increase(vllm:prefix_cache_queries_total[{TPOT_WINDOW}]) > 0)",
}
RETENTION_QUERY = "sum by (namespace, model_name) (increase(vllm:request_success_total[{window}]))"
# Requests queued in a model's endpoint picker (Gateway API Inference Extension flow control), by served model name:
# the demand signal that wakes a model at zero replicas.
UPSTREAM_QUERY = "sum by (namespace, model_name) (inference_extension_flow_control_queue_size)"
# A model's requests over the feedback window by prompt length (vLLM's 1-2-5 token buckets) and by TTFT (edges at
# the model's objective where the platform set them), in one query: each histogram labelled `of` with its name.
MODEL_HISTOGRAMS = {
    "prompt_tokens": "vllm:request_prompt_tokens_bucket",
    "ttft": "vllm:time_to_first_token_seconds_bucket",
}
HISTOGRAMS_QUERY = " or ".join(
    f'label_replace(sum by (namespace, model_name, le) (increase({metric}[{TPOT_WINDOW}])), "of", "{name}", "", "")'
    for name, metric in MODEL_HISTOGRAMS.items()
)
# A model's request shape over the same window, in one query: each counter's increase labelled `of` with its name.
SHAPE_SERIES = {
    "requests": "vllm:request_prompt_tokens_count",
    "prompt": "vllm:request_prompt_tokens_sum",
    "generation": "vllm:request_generation_tokens_sum",
    "cache_queries": "vllm:prefix_cache_queries_total",
    "cache_hits": "vllm:prefix_cache_hits_total",
}
SHAPE_QUERY = " or ".join(
    f'label_replace(sum by (namespace, model_name) (increase({metric}[{TPOT_WINDOW}])), "of", "{name}", "", "")'
    for name, metric in SHAPE_SERIES.items()
)


@dataclass(frozen=True)
class PodMetrics:
    kv: float | None = None
    queue: float | None = None
    running: float | None = None
    throughput: float | None = None
    itl_s: float | None = None
    last_seen: float | None = None
    model_name: str | None = None
    generation_tps: float | None = None
    kv_tokens: int | None = None
    tpot_buckets: Mapping[float, float] | None = None  # requests finished with TPOT <= le, by le (inf included)
    prefix_hit_ratio: float | None = None  # prompt tokens served from the prefix cache, over those looked up

    def tpot_within(self, objective_s: float) -> tuple[float, float] | None:
        """(requests finished, requests whose TPOT met the objective) over the window, read at the largest bucket
        edge not above the objective (conservative when the objective is not an edge); None without the histogram."""
        b = self.tpot_buckets or {}
        edges = [le for le in b if le <= objective_s + 1e-9]
        if math.inf not in b or not edges:
            return None
        return b[math.inf], b[max(edges)]


@dataclass(frozen=True)
class Snapshot:
    """Everything one cycle reads from Prometheus."""

    taken_at: float
    pods: Mapping[PodKey, PodMetrics] = field(default_factory=dict)
    requests_in_retention: Mapping[ModelKey, float] = field(default_factory=dict)
    waiting_upstream: Mapping[ModelKey, float] = field(default_factory=dict)  # in the endpoint pickers' queues
    prompt_tokens: Mapping[ModelKey, Mapping[float, float]] = field(default_factory=dict)  # prompts with <= le tokens
    ttft: Mapping[ModelKey, Mapping[float, float]] = field(default_factory=dict)  # requests with TTFT <= le seconds
    shapes: Mapping[ModelKey, Shape] = field(default_factory=dict)  # measured over the feedback window

    def model_names_in(self, namespace: str) -> list[str]:
        return self._model_names.get(namespace, [])

    @functools.cached_property
    def _model_names(self) -> dict[str, list[str]]:
        """Served model names by namespace, indexed once: every model of a pass asks."""
        names: dict[str, set[str]] = {}
        for (ns, _), m in self.pods.items():
            if m.model_name:
                names.setdefault(ns, set()).add(m.model_name)
        return {ns: sorted(found) for ns, found in names.items()}


@dataclass(frozen=True)
class PrometheusAuth:
    """How to reach Prometheus: plain or TLS with a CA file, a bearer token file, or basic auth."""

    url: str
    ca_file: Path | None = None
    token_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    timeout_s: float = 10.0


def connect(auth: PrometheusAuth) -> PrometheusConnect:
    session = requests.Session()
    if auth.ca_file:
        session.verify = str(auth.ca_file)
    headers = {"Authorization": f"Bearer {auth.token_file.read_text().strip()}"} if auth.token_file else None
    basic = (auth.username, auth.password_file.read_text().strip()) if auth.username and auth.password_file else None
    # One quick retry on a gateway error; the next pass retries the rest. The client's default (3 retries, backoff
    # 1-4 s) makes a pass against a Prometheus that is down last several seconds, past a short leader Lease.
    retry = Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504), allowed_methods=("GET", "POST"))
    return PrometheusConnect(
        auth.url, headers=headers, auth=basic, session=session, timeout=int(auth.timeout_s), retry=retry
    )


Query = Callable[[str], list[dict[str, Any]]]


def _value(name: str, labels: Mapping[str, str], value: str) -> Any:
    """A query's answer for one pod: a number, or what its labels say for the label-carrying queries."""
    if name == "model":
        return labels.get("model_name")
    if name == "kv_tokens":
        return int(labels.get("num_gpu_blocks", 0)) * int(labels.get("block_size", 0))
    return float(value)


def collect(query: Query, retention_window: str = "10m", clock: Callable[[], float] = time.time) -> Snapshot:
    """Run the cycle's queries (len(QUERIES) + 4, whatever the number of models) and index them by pod."""
    values: dict[PodKey, dict[str, Any]] = {}
    for name, promql in QUERIES.items():
        for series in query(promql):
            labels = series.get("metric", {})
            key = (labels.get("namespace", ""), labels.get("pod", ""))
            if not all(key):
                continue
            if name == "tpot":
                values.setdefault(key, {}).setdefault(name, {})[float(labels.get("le", "nan"))] = float(
                    series["value"][1]
                )
                continue
            values.setdefault(key, {})[name] = _value(name, labels, series["value"][1])
    retention = by_model(query(RETENTION_QUERY.format(window=retention_window)))
    upstream = by_model(query(UPSTREAM_QUERY))
    histograms: dict[str, dict[ModelKey, dict[float, float]]] = {name: {} for name in MODEL_HISTOGRAMS}
    for series in query(HISTOGRAMS_QUERY):
        labels = series["metric"]
        key = (labels.get("namespace", ""), labels.get("model_name", ""))
        by_le = histograms.get(labels.get("of", ""), {}).setdefault(key, {})
        by_le[float(labels.get("le", "nan"))] = float(series["value"][1])
    pods = {
        key: PodMetrics(
            kv=v.get("kv"),
            queue=v.get("queue"),
            running=v.get("running"),
            throughput=v.get("throughput"),
            itl_s=v.get("itl"),
            last_seen=v.get("last_seen"),
            model_name=v.get("model"),
            generation_tps=v.get("generation_tps"),
            kv_tokens=v.get("kv_tokens"),
            tpot_buckets=v.get("tpot"),
            prefix_hit_ratio=v.get("prefix_hit"),
        )
        for key, v in values.items()
    }
    prompts, ttft = histograms["prompt_tokens"], histograms["ttft"]
    return Snapshot(clock(), pods, retention, upstream, prompts, ttft, shapes(query(SHAPE_QUERY)))


def shapes(series: list[dict[str, Any]]) -> dict[ModelKey, Shape]:
    """Per model, the mean prompt and output tokens of its finished requests and the share of prompt tokens its
    prefix cache served; only models with finished requests."""
    counters: dict[ModelKey, dict[str, float]] = {}
    for s in series:
        key = (s["metric"].get("namespace", ""), s["metric"].get("model_name", ""))
        counters.setdefault(key, {})[s["metric"].get("of", "")] = float(s["value"][1])
    return {key: shape for key, c in counters.items() if (shape := shape_of(c)) is not None}


def shape_of(c: Mapping[str, float]) -> Shape | None:
    n = c.get("requests", 0.0)
    if not n > 0 or "prompt" not in c or "generation" not in c:
        return None
    looked_up = c.get("cache_queries", 0.0)
    cached = c.get("cache_hits", 0.0) / looked_up if looked_up > 0 else 0.0
    return Shape(c["prompt"] / n, max(1.0, c["generation"] / n), min(1.0, max(0.0, cached)), n)


def by_model(series: list[dict[str, Any]]) -> dict[ModelKey, float]:
    return {(s["metric"].get("namespace", ""), s["metric"].get("model_name", "")): float(s["value"][1]) for s in series}
