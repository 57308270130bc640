"""Prometheus -> per-replica samples, for every model at once: a constant number of queries per cycle.

Series are grouped by (namespace, pod) and later matched to live pods, so metrics of deleted pods (still visible
under `max_over_time` for a minute) never count, and a model-name mismatch is reported instead of ignored.
"""

import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from autoscaler.engine import Shape

PodKey = tuple[str, str]  # (namespace, pod)
ModelKey = tuple[str, str]  # (namespace, served model name)
Series = list[dict[str, Any]]
Query = Callable[[str], Series]
# A per-pod query's reading of one series (its labels and value) into its PodMetrics field, given what earlier
# series of the same pod put there: a histogram's buckets come one series each.
Parse = Callable[[Any, Mapping[str, str], str], Any]

BY_POD = "namespace, pod"
# Requests queued in a model's endpoint picker (Gateway API Inference Extension flow control), by served model name:
# the demand signal that wakes a model at zero replicas.
UPSTREAM_QUERY = "sum by (namespace, model_name) (inference_extension_flow_control_queue_size)"
# A model's requests over the feedback window by prompt and output length (vLLM's 1-2-5 token buckets) and by TTFT
# (edges at the model's objective where the platform set them), in one query: each histogram labelled `of` with its
# name.
MODEL_HISTOGRAMS = {
    "prompt_tokens": "vllm:request_prompt_tokens_bucket",
    "generation_tokens": "vllm:request_generation_tokens_bucket",
    "ttft": "vllm:time_to_first_token_seconds_bucket",
}
# A model's request shape over the same window, in one query: each counter's increase labelled `of` with its name.
SHAPE_SERIES = {
    "requests": "vllm:request_prompt_tokens_count",
    "prompt": "vllm:request_prompt_tokens_sum",
    "generation": "vllm:request_generation_tokens_sum",
    "cache_queries": "vllm:prefix_cache_queries_total",
    "cache_hits": "vllm:prefix_cache_hits_total",
}


def _number(_: Any, labels: Mapping[str, str], value: str) -> float:
    return float(value)


def _model_name(_: Any, labels: Mapping[str, str], value: str) -> str | None:
    return labels.get("model_name")


def _kv_tokens(_: Any, labels: Mapping[str, str], value: str) -> int:
    """The info gauge carries the KV-cache capacity in its labels: blocks x tokens per block."""
    return int(labels.get("num_gpu_blocks", 0)) * int(labels.get("block_size", 0))


def _bucket(buckets: Mapping[float, float] | None, labels: Mapping[str, str], value: str) -> dict[float, float]:
    return {**(buckets or {}), float(labels.get("le", "nan")): float(value)}


@dataclass(frozen=True)
class PodQuery:
    """One per-pod query: its PromQL, the PodMetrics field it fills, and how a series reads into that field."""

    promql: str
    field: str
    parse: Parse = _number


@dataclass(frozen=True)
class Queries:
    """The cycle's PromQL for the windows it reads: `feedback_window_s` (the engine's, over which TPOT, prompt and
    shape counters increase) and `retention_s` (the controller's, over which an idle model has served nothing)."""

    feedback_window_s: float
    retention_s: float

    @functools.cached_property
    def per_pod(self) -> dict[str, PodQuery]:
        """Peaks over one minute as WVA reads them; TGI's queue stands in for vLLM's waiting requests on TGI pods."""
        window = self._feedback
        return {
            "kv": PodQuery(
                f"max by ({BY_POD}) (max_over_time(vllm:kv_cache_usage_perc[1m]))"
                f" or max by ({BY_POD}) (max_over_time(vllm:gpu_cache_usage_perc[1m]))",
                "kv",
            ),
            "queue": PodQuery(
                f"max by ({BY_POD}) (max_over_time(vllm:num_requests_waiting[1m]))"
                f" or max by ({BY_POD}) (max_over_time(tgi_queue_size[1m]))",
                "queue",
            ),
            "running": PodQuery(f"max by ({BY_POD}) (vllm:num_requests_running)", "running"),
            "throughput": PodQuery(f"sum by ({BY_POD}) (rate(vllm:request_success_total[1m]))", "throughput"),
            "itl": PodQuery(
                f"sum by ({BY_POD}) (rate(vllm:inter_token_latency_seconds_sum[1m]))"
                f" / sum by ({BY_POD}) (rate(vllm:inter_token_latency_seconds_count[1m]) > 0)",
                "itl_s",
            ),
            "last_seen": PodQuery(
                f"max by ({BY_POD}) (timestamp(vllm:num_requests_waiting))"
                f" or max by ({BY_POD}) (timestamp(tgi_queue_size))",
                "last_seen",
            ),
            "model": PodQuery(f"max by ({BY_POD}, model_name) (vllm:num_requests_waiting)", "model_name", _model_name),
            "generation_tps": PodQuery(f"sum by ({BY_POD}) (rate(vllm:generation_tokens_total[1m]))", "generation_tps"),
            "kv_tokens": PodQuery(
                f"max by ({BY_POD}, num_gpu_blocks, block_size) (vllm:cache_config_info)", "kv_tokens", _kv_tokens
            ),
            # Requests finished per bucket of vLLM's per-request TPOT histogram over the window (vLLM >= 0.10).
            "tpot": PodQuery(
                f"sum by ({BY_POD}, le) (increase(vllm:request_time_per_output_token_seconds_bucket[{window}]))",
                "tpot_buckets",
                _bucket,
            ),
            # The mean prefill time (first chunk scheduled to first token) over the minute the load and ITL are read
            # over: what a prefill correction compares with the model at that load.
            "prefill": PodQuery(
                f"sum by ({BY_POD}) (rate(vllm:request_prefill_time_seconds_sum[1m]))"
                f" / sum by ({BY_POD}) (rate(vllm:request_prefill_time_seconds_count[1m]) > 0)",
                "prefill_s",
            ),
            # The share of prompt tokens found in the prefix cache over the same window (vLLM V1 counts tokens).
            "prefix_hit": PodQuery(
                f"sum by ({BY_POD}) (increase(vllm:prefix_cache_hits_total[{window}]))"
                f" / sum by ({BY_POD}) (increase(vllm:prefix_cache_queries_total[{window}]) > 0)",
                "prefix_hit_ratio",
            ),
        }

    @property
    def retention(self) -> str:
        return f"sum by (namespace, model_name) (increase(vllm:request_success_total[{self.retention_s:.0f}s]))"

    @property
    def upstream(self) -> str:
        return UPSTREAM_QUERY

    @property
    def histograms(self) -> str:
        return self._labelled("namespace, model_name, le", MODEL_HISTOGRAMS)

    @property
    def shape(self) -> str:
        return self._labelled("namespace, model_name", SHAPE_SERIES)

    @property
    def _feedback(self) -> str:
        return f"{self.feedback_window_s:.0f}s"

    def _labelled(self, by: str, metrics: Mapping[str, str]) -> str:
        """Several counters' increase over the feedback window in one query, each labelled `of` with its name."""
        return " or ".join(
            f'label_replace(sum by ({by}) (increase({metric}[{self._feedback}])), "of", "{name}", "", "")'
            for name, metric in metrics.items()
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
    prefill_s: float | None = None  # mean prefill time of the requests over the last minute

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
    # requests with <= le output tokens
    generation_tokens: Mapping[ModelKey, Mapping[float, float]] = field(default_factory=dict)

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


def collect(query: Query, queries: Queries, clock: Callable[[], float] = time.time) -> Snapshot:
    """Run the cycle's queries, len(queries.per_pod) + 4 whatever the number of models, each read by its parser."""
    pods = _pods([(q, query(q.promql)) for q in queries.per_pod.values()])
    retention = by_model(query(queries.retention))
    upstream = by_model(query(queries.upstream))
    histograms = _histograms(query(queries.histograms))
    shaped = shapes(query(queries.shape))
    return Snapshot(
        taken_at=clock(),
        pods=pods,
        requests_in_retention=retention,
        waiting_upstream=upstream,
        prompt_tokens=histograms["prompt_tokens"],
        ttft=histograms["ttft"],
        shapes=shaped,
        generation_tokens=histograms["generation_tokens"],
    )


def _pods(answers: Iterable[tuple[PodQuery, Series]]) -> dict[PodKey, PodMetrics]:
    """The per-pod answers indexed by (namespace, pod); series without both labels are nobody's."""
    fields: dict[PodKey, dict[str, Any]] = {}
    for q, series in answers:
        name, parse = q.field, q.parse
        for s in series:
            labels = s.get("metric", {})
            ns, pod = labels.get("namespace"), labels.get("pod")
            if not (ns and pod):
                continue
            mine = fields.get((ns, pod))
            if mine is None:
                mine = fields[(ns, pod)] = {}
            # Most queries are plain numbers: read them without the call (a pass reads ~20k series).
            mine[name] = float(s["value"][1]) if parse is _number else parse(mine.get(name), labels, s["value"][1])
    return {key: PodMetrics(**f) for key, f in fields.items()}


def _histograms(series: Series) -> dict[str, dict[ModelKey, dict[float, float]]]:
    """The model histograms' buckets by histogram name (`of`), then by model, then by edge."""
    out: dict[str, dict[ModelKey, dict[float, float]]] = {name: {} for name in MODEL_HISTOGRAMS}
    for s in series:
        labels = s["metric"]
        key = (labels.get("namespace", ""), labels.get("model_name", ""))
        by_le = out.get(labels.get("of", ""), {}).setdefault(key, {})
        by_le[float(labels.get("le", "nan"))] = float(s["value"][1])
    return out


def shapes(series: Series) -> dict[ModelKey, Shape]:
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


def by_model(series: Series) -> dict[ModelKey, float]:
    return {(s["metric"].get("namespace", ""), s["metric"].get("model_name", "")): float(s["value"][1]) for s in series}
