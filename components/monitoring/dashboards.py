"""Grafana dashboards of the platform, built from small functions (no copied JSON) and loaded by Grafana's
sidecar from labelled ConfigMaps. Their queries read the recorded series of `rules`."""

import json
from typing import Any

from autoscaler.api import (
    METRIC_CURRENT_REPLICAS,
    METRIC_DECISIONS,
    METRIC_DESIRED_REPLICAS,
    METRIC_METRICS_AVAILABLE,
)
from components.monitoring import rules
from components.monitoring.scraping import MODEL_SERVER_JOB

# kube-prometheus-stack provisions its Prometheus data source with this uid.
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
GRID_WIDTH = 24
PANEL_HEIGHT = 8
SERVERS = f'job="{MODEL_SERVER_JOB}", namespace=~"$namespace"'
PERCENTILES = (0.5, 0.9, 0.99)


def query(expr: str, legend: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend}


def panel(title: str, queries: list[dict[str, Any]], unit: str, kind: str = "timeseries") -> dict[str, Any]:
    """A panel without a place yet: `dashboard` lays panels out in rows, two to a row (a stat: four)."""
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "targets": [{**q, "refId": chr(ord("A") + i)} for i, q in enumerate(queries)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
    }


def stacked(p: dict[str, Any]) -> dict[str, Any]:
    return {
        **p,
        "fieldConfig": {
            **p["fieldConfig"],
            "defaults": {**p["fieldConfig"]["defaults"], "custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}},
        },
    }


def variable(name: str, metric: str, label: str, hide: bool = False) -> dict[str, Any]:
    """A multi-value query variable, all values by default, read from one label of one series."""
    definition = f"label_values({metric}, {label})"
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": name},
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "hide": 2 if hide else 0,
    }


def dashboard(uid: str, title: str, variables: list[dict[str, Any]], panels: list[dict[str, Any]]) -> dict[str, Any]:
    placed: list[dict[str, Any]] = []
    x, y = 0, 0
    for i, p in enumerate(panels):
        width = GRID_WIDTH // 4 if p["type"] == "stat" else GRID_WIDTH // 2
        height = PANEL_HEIGHT // 2 if p["type"] == "stat" else PANEL_HEIGHT
        if x + width > GRID_WIDTH:
            x, y = 0, y + (PANEL_HEIGHT // 2 if placed[-1]["type"] == "stat" else PANEL_HEIGHT)
        placed.append({**p, "id": i + 1, "gridPos": {"x": x, "y": y, "w": width, "h": height}})
        x += width
    return {
        "uid": uid,
        "title": title,
        "tags": ["llm-platform"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "panels": placed,
    }


def latency_percentiles(histogram: str, by: str) -> list[dict[str, Any]]:
    return [
        query(
            f'histogram_quantile({q:g}, sum by ({by}, le) (rate({histogram}_bucket{{{SERVERS}, model=~"$model"}}'
            "[$__rate_interval])))",
            f"{{{{{by}}}}} p{q * 100:g}",
        )
        for q in PERCENTILES
    ]


def platform_dashboard() -> dict[str, Any]:
    """Per model: replicas by variant, KV cache, queue, latency percentiles, cost now, the autoscaler's decisions."""
    sel = '{namespace=~"$namespace", model=~"$model"}'
    autoscaled = '{model_namespace=~"$namespace", model_id=~"$model_id"}'
    variables = [
        variable("namespace", rules.REPLICAS, "namespace"),
        variable("model", f'{rules.REPLICAS}{{namespace=~"$namespace"}}', "model"),
        variable("model_id", f"{rules.TTFT_SLO}{sel}", "model_id", hide=True),
    ]
    ttft_slo = query(f"max by (model) ({rules.TTFT_SLO}{sel})", "{{model}} SLO")
    panels = [
        panel("Cost now (USD/h)", [query(f"sum({rules.COST_PER_HOUR}{sel})", "total")], "currencyUSD", "stat"),
        panel("Replicas now", [query(f"sum({rules.REPLICAS}{sel})", "replicas")], "short", "stat"),
        panel("Requests/s now", [query(f"sum({rules.REQUEST_RATE}{sel})", "req/s")], "reqps", "stat"),
        panel("Waiting now", [query(f"sum({rules.WAITING}{sel})", "waiting")], "short", "stat"),
        stacked(panel("Replicas by variant", [query(f"{rules.REPLICAS}{sel}", "{{model}} {{variant}}")], "short")),
        stacked(
            panel(
                "Cost by variant (USD/h)",
                [query(f"{rules.COST_PER_HOUR}{sel}", "{{model}} {{variant}}")],
                "currencyUSD",
            )
        ),
        panel("KV-cache usage by variant", [query(f"{rules.KV_USAGE}{sel}", "{{model}} {{variant}}")], "percentunit"),
        panel(
            "Queue by variant",
            [
                query(f"{rules.WAITING}{sel}", "{{model}} {{variant}} waiting"),
                query(f"{rules.RUNNING}{sel}", "{{model}} {{variant}} running"),
            ],
            "short",
        ),
        panel(
            "Time to first token", [*latency_percentiles("vllm:time_to_first_token_seconds", "model"), ttft_slo], "s"
        ),
        panel("Inter-token latency", latency_percentiles("vllm:inter_token_latency_seconds", "model"), "s"),
        panel(
            "Autoscaler: desired and current replicas",
            [
                query(f"{METRIC_DESIRED_REPLICAS}{autoscaled}", "{{model_id}} {{variant}} desired"),
                query(f"{METRIC_CURRENT_REPLICAS}{autoscaled}", "{{model_id}} {{variant}} current"),
            ],
            "short",
        ),
        panel(
            "Autoscaler: decisions",
            [
                query(
                    f"sum by (model_id, variant, direction, reason) (increase({METRIC_DECISIONS}{autoscaled}"
                    "[$__rate_interval])) > 0",
                    "{{model_id}} {{variant}} {{direction}}: {{reason}}",
                ),
                query(f"{METRIC_METRICS_AVAILABLE}{autoscaled}", "{{model_id}} metrics available"),
            ],
            "short",
        ),
    ]
    return dashboard("llm-platform", "LLM platform: models, variants, cost", variables, panels)


def vllm_dashboard() -> dict[str, Any]:
    """Per model-server pod: the vLLM engine's load, throughput and latencies."""
    pods = f'{{{SERVERS}, model_name=~"$model_name", pod=~"$pod"}}'
    variables = [
        variable("namespace", f'vllm:num_requests_waiting{{job="{MODEL_SERVER_JOB}"}}', "namespace"),
        variable("model_name", f"vllm:num_requests_waiting{{{SERVERS}}}", "model_name"),
        variable("pod", f'vllm:num_requests_waiting{{{SERVERS}, model_name=~"$model_name"}}', "pod"),
    ]

    def per_pod(expr: str) -> dict[str, Any]:
        return query(f"sum by (pod) ({expr})", "{{pod}}")

    def pod_p99(histogram: str) -> dict[str, Any]:
        return query(
            f"histogram_quantile(0.99, sum by (pod, le) (rate({histogram}_bucket{pods}[$__rate_interval])))",
            "{{pod}} p99",
        )

    panels = [
        panel("KV-cache usage", [per_pod(f"vllm:kv_cache_usage_perc{pods}")], "percentunit"),
        panel(
            "Requests running and waiting",
            [
                query(f"sum by (pod) (vllm:num_requests_running{pods})", "{{pod}} running"),
                query(f"sum by (pod) (vllm:num_requests_waiting{pods})", "{{pod}} waiting"),
            ],
            "short",
        ),
        panel("Finished requests/s", [per_pod(f"rate(vllm:request_success_total{pods}[$__rate_interval])")], "reqps"),
        panel(
            "Tokens/s",
            [
                query(f"sum by (pod) (rate(vllm:prompt_tokens_total{pods}[$__rate_interval]))", "{{pod}} prompt"),
                query(
                    f"sum by (pod) (rate(vllm:generation_tokens_total{pods}[$__rate_interval]))", "{{pod}} generated"
                ),
            ],
            "short",
        ),
        panel("Time to first token (p99)", [pod_p99("vllm:time_to_first_token_seconds")], "s"),
        panel("Inter-token latency (p99)", [pod_p99("vllm:inter_token_latency_seconds")], "s"),
        panel("End-to-end request latency (p99)", [pod_p99("vllm:e2e_request_latency_seconds")], "s"),
    ]
    return dashboard("llm-platform-vllm", "vLLM model servers", variables, panels)


def dashboards() -> list[dict[str, Any]]:
    return [platform_dashboard(), vllm_dashboard()]


def configmap_data(board: dict[str, Any]) -> dict[str, str]:
    """The ConfigMap data the Grafana sidecar reads: one JSON file named after the dashboard's uid."""
    return {f"{board['uid']}.json": json.dumps(board, sort_keys=True)}
