"""The platform's recording rules and alerts, checked and unit-tested by promtool on synthetic vLLM series."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.model_serving.args import ModelArgs
from components.monitoring.args import MonitoringArgs
from components.monitoring.rules import alert_settings, rule_groups

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="Debian package prometheus not installed")

NS = "llm"
# Two models: one on the default TTFT objective (2 s), one stating its own (0.5 s).
MODELS = [
    ModelArgs.model_validate(
        {
            "name": "llama",
            "modelID": "meta/llama",
            "variants": [
                {"name": "l40s", "acceleratorType": "L40S", "cost": 5},
                {"name": "h100", "acceleratorType": "H100", "cost": 40},
            ],
        }
    ),
    ModelArgs.model_validate(
        {
            "name": "small",
            "modelID": "meta/small",
            "slo": {"ttftSeconds": 0.5},
            "variants": [{"name": "small-l40s", "acceleratorType": "L40S", "cost": 3}],
        }
    ),
]
SERVER = 'job="llm-model-servers", namespace="llm"'


def pod(name: str, model: str, variant: str) -> str:
    return f'{SERVER}, pod="{name}", model="{model}", variant="{variant}", model_name="meta/{model}", engine="0"'


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def ttft_histogram(labels: str, first_bucket: float) -> list[dict[str, str]]:
    """Ten requests a minute, every one slower than the bucket below `first_bucket`."""
    return [
        series(
            "vllm:time_to_first_token_seconds_bucket",
            f'{labels}, le="{le}"',
            "0+10x30" if le >= first_bucket else "0x30",
        )
        for le in (0.25, 1.0, 2.5, 5.0, float("inf"))
    ]


def firing(alert: str, **labels: str) -> dict[str, Any]:
    rendered = ", ".join(f'{k}="{v}"' for k, v in {"alertname": alert, "alertstate": "firing", **labels}.items())
    return {"labels": f"ALERTS{{{rendered}}}", "value": 1}


def alerts_at(eval_time: str, *expected: dict[str, Any]) -> dict[str, Any]:
    return {"expr": 'ALERTS{alertstate="firing"}', "eval_time": eval_time, "exp_samples": list(expected)}


def write_rules(tmp_path: Path, args: MonitoringArgs | None = None) -> Path:
    path = tmp_path / "llm-platform.rules.yaml"
    groups = rule_groups(MODELS, alert_settings(args or MonitoringArgs()))
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def run_unit_tests(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    rules = write_rules(tmp_path)
    spec = tmp_path / "tests.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}))
    result = promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_rules_pass_promtool_check(tmp_path: Path) -> None:
    result = promtool("check", "rules", str(write_rules(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    # A price per variant (3), an objective per model (2), 10 recorded series and 8 alerts.
    assert "SUCCESS: 24 rules found" in result.stdout


def test_recorded_replicas_cost_and_load_per_variant(tmp_path: Path) -> None:
    l40s = [pod(f"l40s-{i}", "llama", "l40s") for i in range(2)]
    inputs = [
        *(series("up", p, "1x30") for p in l40s),
        series("vllm:kv_cache_usage_perc", l40s[0], "0.5x30"),
        series("vllm:kv_cache_usage_perc", l40s[1], "0.7x30"),
        series("vllm:num_requests_waiting", l40s[0], "3x30"),
        series("vllm:num_requests_waiting", l40s[1], "4x30"),
        series("vllm:request_success_total", l40s[0], "0+60x30"),
        series("vllm:request_success_total", l40s[1], "0+120x30"),
    ]
    where = 'namespace="llm", model="llama"'

    def sample(name: str, variant: str, value: float) -> dict[str, Any]:
        return {"labels": f'{name}{{{where}, variant="{variant}"}}', "value": value}

    run_unit_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    # The H100 variant has no pods: 0 replicas and 0 USD/h, not a missing series.
                    {
                        "expr": f"namespace_model_variant:replicas:count{{{where}}}",
                        "eval_time": "5m",
                        "exp_samples": [
                            sample("namespace_model_variant:replicas:count", v, n)
                            for v, n in [("l40s", 2), ("h100", 0)]
                        ],
                    },
                    {
                        "expr": f"namespace_model_variant:cost_usd_per_hour:sum{{{where}}}",
                        "eval_time": "5m",
                        "exp_samples": [
                            sample("namespace_model_variant:cost_usd_per_hour:sum", v, usd)
                            for v, usd in [("l40s", 10), ("h100", 0)]
                        ],
                    },
                    {
                        "expr": "namespace_model_variant:vllm_kv_cache_usage_perc:avg",
                        "eval_time": "5m",
                        "exp_samples": [sample("namespace_model_variant:vllm_kv_cache_usage_perc:avg", "l40s", 0.6)],
                    },
                    {
                        "expr": "namespace_model_variant:vllm_num_requests_waiting:sum",
                        "eval_time": "5m",
                        "exp_samples": [sample("namespace_model_variant:vllm_num_requests_waiting:sum", "l40s", 7)],
                    },
                    {
                        "expr": "namespace_model_variant:vllm_request_success:rate1m",
                        "eval_time": "5m",
                        "exp_samples": [sample("namespace_model_variant:vllm_request_success:rate1m", "l40s", 3)],
                    },
                ],
            }
        ],
    )


def test_serving_alerts_fire_after_their_hold_time_and_name_the_variant(tmp_path: Path) -> None:
    saturated = pod("l40s-0", "llama", "l40s")
    small = pod("small-0", "small", "small-l40s")
    inputs = [
        series("up", saturated, "1x30"),
        series("vllm:kv_cache_usage_perc", saturated, "0.97x30"),
        series("vllm:num_requests_waiting", saturated, "0+1x30"),
        # All of llama's first tokens take 2.5-5 s (SLO 2 s); small's take under 0.25 s (its SLO: 0.5 s).
        *ttft_histogram(saturated, 5.0),
        *ttft_histogram(small, 0.25),
        series("up", small, "1x30"),
        series("up", pod("h100-0", "llama", "h100"), "0x30"),
    ]
    llama = {"namespace": NS, "model": "llama"}
    variant = {**llama, "variant": "l40s"}
    down = {
        **llama,
        "job": "llm-model-servers",
        "pod": "h100-0",
        "variant": "h100",
        "model_name": "meta/llama",
        "engine": "0",
    }
    run_unit_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    alerts_at("5m"),
                    alerts_at(
                        "20m",
                        firing("LlmKvCacheSaturated", severity="warning", **variant),
                        firing("LlmModelServerDown", severity="critical", **down),
                        firing("LlmQueueGrowing", severity="warning", **llama),
                        firing("LlmTtftSloBreached", severity="critical", **llama),
                    ),
                ],
                "alert_rule_test": [
                    {
                        "alertname": "LlmKvCacheSaturated",
                        "eval_time": "20m",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", **variant},
                                "exp_annotations": {
                                    "summary": "KV cache of llama/l40s in llm is 97% full",
                                    "description": "vLLM preempts and requeues requests when its KV cache is full; "
                                    "latency rises. Add replicas.",
                                    "runbook_url": "README.md#llmkvcachesaturated",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    )


def test_gpu_and_autoscaler_alerts(tmp_path: Path) -> None:
    autoscaler = 'job="llm-platform-autoscaler", namespace="wva-system"'
    gpu = 'job="nvidia-dcgm-exporter", namespace="gpu-operator", pod="dcgm-a", gpu="0", Hostname="node-a"'
    inputs = [
        series("DCGM_FI_DEV_XID_ERRORS", gpu, "0 0 79x30"),
        series("up", 'job="nvidia-dcgm-exporter", namespace="gpu-operator", pod="dcgm-b"', "0x30"),
        # The leader stops after 5 minutes; the standby never reconciled (its gauge reads 0).
        series("wva_last_reconcile_timestamp_seconds", f'{autoscaler}, pod="leader"', "0+60x5 300x25"),
        series("wva_last_reconcile_timestamp_seconds", f'{autoscaler}, pod="standby"', "0x30"),
        series(
            "wva_metrics_available", f'{autoscaler}, pod="leader", model_id="meta/llama", model_namespace="llm"', "0x30"
        ),
        # H100 pods cannot be placed from minute 3 on.
        series(
            "wva_variant_capacity_limited",
            f'{autoscaler}, pod="leader", model_id="meta/llama", model_namespace="llm", variant="h100", '
            'accelerator="H100"',
            "0 0 0 1x30",
        ),
    ]
    xid = {
        "gpu": "0",
        "Hostname": "node-a",
        "job": "nvidia-dcgm-exporter",
        "namespace": "gpu-operator",
        "pod": "dcgm-a",
    }
    missing = {
        "model_id": "meta/llama",
        "model_namespace": "llm",
        "job": "llm-platform-autoscaler",
        "namespace": "wva-system",
        "pod": "leader",
    }
    run_unit_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    alerts_at(
                        "8m",
                        firing("GpuXidError", severity="critical", **xid),
                        firing("LlmAutoscalerMissingMetrics", severity="warning", **missing),
                    ),
                    alerts_at(
                        "20m",
                        firing(
                            "GpuTelemetryDown",
                            severity="warning",
                            job="nvidia-dcgm-exporter",
                            namespace="gpu-operator",
                            pod="dcgm-b",
                        ),
                        firing("GpuXidError", severity="critical", **xid),
                        firing("LlmAutoscalerMissingMetrics", severity="warning", **missing),
                        firing("LlmAutoscalerNotReconciling", severity="critical", namespace="wva-system"),
                        firing(
                            "LlmVariantCapacityLimited",
                            severity="warning",
                            variant="h100",
                            accelerator="H100",
                            **missing,
                        ),
                    ),
                ],
            }
        ],
    )


def test_a_reconciling_leader_beside_an_idle_standby_raises_nothing(tmp_path: Path) -> None:
    autoscaler = 'job="llm-platform-autoscaler", namespace="wva-system"'
    inputs = [
        series("up", f'{autoscaler}, pod="leader"', "1x30"),
        series("up", f'{autoscaler}, pod="standby"', "1x30"),
        series("wva_last_reconcile_timestamp_seconds", f'{autoscaler}, pod="leader"', "0+60x30"),
        series("wva_last_reconcile_timestamp_seconds", f'{autoscaler}, pod="standby"', "0x30"),
    ]
    run_unit_tests(tmp_path, [{"interval": "1m", "input_series": inputs, "promql_expr_test": [alerts_at("25m")]}])
