"""Recording rules and alerts of the platform, generated from the stack's models: one source for the chart's
PrometheusRule and for the rules file promtool checks.

Recorded names follow Prometheus' `level:metric:operation` convention; the level names the labels kept.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.api import METRIC_CAPACITY_LIMITED, METRIC_LAST_RECONCILE, METRIC_METRICS_AVAILABLE
from components.model_serving.args import ModelArgs
from components.monitoring.args import MonitoringArgs
from components.monitoring.scraping import AUTOSCALER_JOB, MODEL, MODEL_SERVER_JOB, VARIANT

BY_VARIANT = f"namespace, {MODEL}, {VARIANT}"
BY_MODEL = f"namespace, {MODEL}"
SERVERS = f'job="{MODEL_SERVER_JOB}"'
# The GPU Operator's DCGM exporter Service, whose name is the job of its ServiceMonitor's targets.
DCGM_JOB = "nvidia-dcgm-exporter"

# Series generated from the stack's config: what a replica costs, and the TTFT each model promises.
COST_PER_REPLICA_HOUR = "namespace_model_variant:cost_usd_per_replica_hour:config"
TTFT_SLO = "namespace_model:ttft_slo_seconds:config"
# Series recorded from the scraped model servers.
REPLICAS = "namespace_model_variant:replicas:count"
COST_PER_HOUR = "namespace_model_variant:cost_usd_per_hour:sum"
KV_USAGE = "namespace_model_variant:vllm_kv_cache_usage_perc:avg"
WAITING = "namespace_model_variant:vllm_num_requests_waiting:sum"
RUNNING = "namespace_model_variant:vllm_num_requests_running:sum"
REQUEST_RATE = "namespace_model_variant:vllm_request_success:rate1m"
TTFT_P99 = "namespace_model_variant:vllm_time_to_first_token_seconds:p99_5m"
ITL_P99 = "namespace_model_variant:vllm_inter_token_latency_seconds:p99_5m"
MODEL_TTFT_P99 = "namespace_model:vllm_time_to_first_token_seconds:p99_5m"
MODEL_WAITING = "namespace_model:vllm_num_requests_waiting:sum"


@dataclass(frozen=True)
class AlertSettings:
    """What the alerts compare against; per-model TTFT objectives come from the models themselves."""

    default_ttft_slo_seconds: float
    kv_cache_saturation: float
    runbook_url: str


def alert_settings(args: MonitoringArgs) -> AlertSettings:
    return AlertSettings(args.default_ttft_slo_seconds, args.kv_cache_alert_threshold, args.runbook_url)


def ttft_slo_seconds(model: ModelArgs, default: float) -> float:
    """A model's own `slo.ttftSeconds` when the stack file states it, else the monitoring default."""
    stated = "slo" in model.model_fields_set and "ttft_seconds" in model.slo.model_fields_set
    return model.slo.ttft_seconds if stated else default


def p99(histogram: str, by: str) -> str:
    return f"histogram_quantile(0.99, sum by ({by}, le) (rate({histogram}_bucket{{{SERVERS}}}[5m])))"


def config_rules(models: Sequence[ModelArgs], default_ttft_slo_seconds: float) -> list[dict[str, Any]]:
    """Constant series from the stack: prices per variant and TTFT objectives per model, joined in PromQL."""
    rules: list[dict[str, Any]] = []
    for m in models:
        for v in m.variants:
            labels = {"namespace": m.namespace, MODEL: m.name, VARIANT: v.name}
            rules.append({"record": COST_PER_REPLICA_HOUR, "expr": f"vector({v.cost:g})", "labels": labels})
        slo = ttft_slo_seconds(m, default_ttft_slo_seconds)
        labels = {"namespace": m.namespace, MODEL: m.name, "model_id": m.model_id}
        rules.append({"record": TTFT_SLO, "expr": f"vector({slo:g})", "labels": labels})
    return rules


def serving_rules() -> list[dict[str, Any]]:
    """Per model and variant, from the vLLM metrics of every scraped replica.

    Replicas are the scraped model-server pods (a pod still loading its model is a target that is down, and it
    already holds its GPUs); a variant without pods records 0, so its cost reads 0 instead of missing.
    """
    return [
        {
            "record": REPLICAS,
            "expr": f"count by ({BY_VARIANT}) (up{{{SERVERS}}}) or 0 * {COST_PER_REPLICA_HOUR}",
        },
        {"record": COST_PER_HOUR, "expr": f"{REPLICAS} * {COST_PER_REPLICA_HOUR}"},
        {"record": KV_USAGE, "expr": f"avg by ({BY_VARIANT}) (vllm:kv_cache_usage_perc{{{SERVERS}}})"},
        {"record": WAITING, "expr": f"sum by ({BY_VARIANT}) (vllm:num_requests_waiting{{{SERVERS}}})"},
        {"record": RUNNING, "expr": f"sum by ({BY_VARIANT}) (vllm:num_requests_running{{{SERVERS}}})"},
        {
            "record": REQUEST_RATE,
            "expr": f"sum by ({BY_VARIANT}) (rate(vllm:request_success_total{{{SERVERS}}}[1m]))",
        },
        {"record": TTFT_P99, "expr": p99("vllm:time_to_first_token_seconds", BY_VARIANT)},
        {"record": ITL_P99, "expr": p99("vllm:inter_token_latency_seconds", BY_VARIANT)},
        {"record": MODEL_TTFT_P99, "expr": p99("vllm:time_to_first_token_seconds", BY_MODEL)},
        {"record": MODEL_WAITING, "expr": f"sum by ({BY_MODEL}) (vllm:num_requests_waiting{{{SERVERS}}})"},
    ]


def alert(
    name: str, expr: str, for_: str, severity: str, summary: str, description: str, runbook_url: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{runbook_url}#{name.lower()}",
        },
    }


def alert_rules(settings: AlertSettings) -> list[dict[str, Any]]:
    where = "{{ $labels.model }}/{{ $labels.variant }} in {{ $labels.namespace }}"
    runbook = settings.runbook_url
    return [
        alert(
            "LlmKvCacheSaturated",
            f"{KV_USAGE} >= {settings.kv_cache_saturation:g}",
            "10m",
            "warning",
            f"KV cache of {where} is {{{{ $value | humanizePercentage }}}} full",
            "vLLM preempts and requeues requests when its KV cache is full; latency rises. Add replicas.",
            runbook,
        ),
        alert(
            "LlmQueueGrowing",
            f"{MODEL_WAITING} > 0 and deriv({MODEL_WAITING}[10m]) > 0",
            "10m",
            "warning",
            "Waiting requests of {{ $labels.model }} in {{ $labels.namespace }} keep growing ({{ $value }} now)",
            "Arrivals exceed what the replicas serve; the queue grows until capacity is added.",
            runbook,
        ),
        alert(
            "LlmTtftSloBreached",
            f"{MODEL_TTFT_P99} > on ({BY_MODEL}) {TTFT_SLO}",
            "10m",
            "critical",
            "P99 time to first token of {{ $labels.model }} in {{ $labels.namespace }} is "
            "{{ $value | humanizeDuration }}, over its SLO",
            f"The objective is the series {TTFT_SLO} (models[].slo.ttftSeconds or monitoring.defaultTtftSloSeconds).",
            runbook,
        ),
        alert(
            "LlmModelServerDown",
            f"up{{{SERVERS}}} == 0",
            "15m",
            "critical",
            "Model server {{ $labels.pod }} in {{ $labels.namespace }} has not answered /metrics for 15 minutes",
            "A cold 70B replica needs up to ~10 minutes before its HTTP server starts; longer is a failure.",
            runbook,
        ),
        alert(
            "GpuXidError",
            "DCGM_FI_DEV_XID_ERRORS > 0",
            "1m",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID error {{ $value }}",
            "An XID is a GPU or driver fault (79: fallen off the bus, 48/94/95: ECC); pods on it may fail.",
            runbook,
        ),
        alert(
            "GpuTelemetryDown",
            f'up{{job="{DCGM_JOB}"}} == 0',
            "10m",
            "warning",
            "DCGM exporter {{ $labels.pod }} is down: the GPUs of its node are not observed",
            "The exporter fails when the driver or the GPU does; check the node's GPU Operator pods.",
            runbook,
        ),
        alert(
            "LlmAutoscalerNotReconciling",
            f'time() - max by (namespace) ({METRIC_LAST_RECONCILE}{{job="{AUTOSCALER_JOB}"}}) > 300'
            f' or max by (namespace) (up{{job="{AUTOSCALER_JOB}"}}) == 0',
            "5m",
            "critical",
            "The autoscaler in {{ $labels.namespace }} has not completed a pass for 5 minutes",
            "No leader is reconciling: replicas stay where they are whatever the load.",
            runbook,
        ),
        alert(
            "LlmVariantCapacityLimited",
            f'{METRIC_CAPACITY_LIMITED}{{job="{AUTOSCALER_JOB}"}} == 1',
            "15m",
            "warning",
            "The cluster cannot place pods of {{ $labels.variant }} ({{ $labels.accelerator }}) for "
            "{{ $labels.model_id }} in {{ $labels.model_namespace }}",
            "Its pods stay Unschedulable (no node with a free GPU of the type); the autoscaler serves the model "
            "with its other variants and retries this one with a growing backoff.",
            runbook,
        ),
        alert(
            "LlmAutoscalerMissingMetrics",
            f'{METRIC_METRICS_AVAILABLE}{{job="{AUTOSCALER_JOB}"}} == 0',
            "5m",
            "warning",
            "The autoscaler holds {{ $labels.model_id }} in {{ $labels.model_namespace }}: its metrics are missing",
            "It never scales on missing or stale metrics; the VariantAutoscaling's conditions say why.",
            runbook,
        ),
    ]


def rule_groups(models: Sequence[ModelArgs], settings: AlertSettings) -> list[dict[str, Any]]:
    return [
        {"name": "llm-platform.config", "rules": config_rules(models, settings.default_ttft_slo_seconds)},
        {"name": "llm-platform.serving", "rules": serving_rules()},
        {"name": "llm-platform.alerts", "rules": alert_rules(settings)},
    ]
