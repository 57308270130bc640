"""The monitoring stack's scraping, recording rules and dashboard queries against a real Prometheus.

Simulated pods stand for model servers and the autoscaler; Prometheus scrapes them through the jobs the Prometheus
Operator makes of our PodMonitors, and evaluates the rules the chart receives.
"""

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.api import serving_labels
from components.model_serving.args import ModelArgs
from components.monitoring import dashboards, rules
from components.monitoring.args import MonitoringArgs
from components.monitoring.rules import alert_settings
from components.monitoring.scraping import pod_monitors
from tests.integration.prometheus import PROMETHEUS, RunningPrometheus, run_prometheus
from tests.integration.prometheus_fixture import SimulatedAutoscaler, SimulatedVllmServer, pod_monitor_job

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian package prometheus not installed")

MONITORING_NS = "monitoring"
LLAMA = "meta/llama"
MODELS = [
    ModelArgs.model_validate(
        {
            "name": "llama",
            "modelID": LLAMA,
            "namespace": "llm",
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
            "namespace": "team",
            "variants": [{"name": "small-l40s", "acceleratorType": "L40S", "cost": 3}],
        }
    ),
]
# Grafana's variables with everything selected, and a rate window that spans several 1 s scrapes.
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$namespace": ".*", "$model_id": ".*", "$model_name": ".*"}


def server(namespace: str, pod: str, model: str, variant: str, model_name: str) -> SimulatedVllmServer:
    return SimulatedVllmServer(namespace, pod, model_name, pod_labels=serving_labels(model, variant))


@pytest.fixture(scope="module")
def pods() -> Iterator[dict[str, Any]]:
    found: dict[str, Any] = {
        "l40s-0": server("llm", "l40s-0", "llama", "l40s", LLAMA),
        "l40s-1": server("llm", "l40s-1", "llama", "l40s", LLAMA),
        "h100-0": server("llm", "h100-0", "llama", "h100", LLAMA),
        "small-0": server("team", "small-0", "small", "small-l40s", "meta/small"),
        # Not selected: no serving label; a namespace no model uses; a port of another name.
        "unlabelled": SimulatedVllmServer("llm", "unlabelled", LLAMA),
        "elsewhere": server("other", "elsewhere-0", "llama", "l40s", LLAMA),
        "sidecar": SimulatedVllmServer(
            "llm", "sidecar", LLAMA, pod_labels=serving_labels("llama", "l40s"), port_name="admin"
        ),
        "autoscaler": SimulatedAutoscaler("wva-system", "autoscaler-0"),
    }
    yield found
    for p in found.values():
        p.stop()


@pytest.fixture(scope="module")
def prom(pods: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    workdir = tmp_path_factory.mktemp("monitoring")
    rule_file = workdir / "llm-platform.rules.yaml"
    groups = rules.rule_groups(MODELS, alert_settings(MonitoringArgs()))
    rule_file.write_text(yaml.safe_dump({"groups": groups}))
    jobs = [pod_monitor_job(m, MONITORING_NS, list(pods.values())) for m in pod_monitors([m.namespace for m in MODELS])]
    for name, kv, waiting, running in [
        ("l40s-0", 0.5, 3, 4),
        ("l40s-1", 0.7, 1, 6),
        ("h100-0", 0.2, 0, 2),
        ("small-0", 0.1, 0, 1),
    ]:
        pods[name].kv.set(kv)
        pods[name].waiting.set(waiting)
        pods[name].running.set(running)
    telemetry = pods["autoscaler"].telemetry
    variant = (LLAMA, "llm", "l40s", "L40S")
    telemetry.desired.labels(*variant).set(3)
    telemetry.current.labels(*variant).set(2)
    telemetry.metrics_available.labels(LLAMA, "llm").set(1)
    with run_prometheus(jobs, [rule_file], workdir) as running:
        running.wait_for("up", 5)
        # Requests over several scrapes, so that rates and histogram quantiles have points to work with.
        for _ in range(8):
            for name in ("l40s-0", "l40s-1", "h100-0"):
                pods[name].serve(requests=5, ttft_s=0.3, itl_s=0.04, e2e_s=3.0)
            pods["small-0"].serve(requests=5, ttft_s=0.08, itl_s=0.02, e2e_s=1.0)
            telemetry.decisions.labels(LLAMA, "llm", "l40s", "up", "saturated").inc()
            telemetry.last_reconcile.set(time.time())
            time.sleep(1)
        running.wait_for(rules.TTFT_P99, 3)
        yield running


def values(prom: RunningPrometheus, promql: str, *by: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(label, "") for label in by): float(r["value"][1]) for r in prom.query(promql)}


def test_pod_monitors_select_the_serving_pods_and_label_them(prom: RunningPrometheus) -> None:
    up = values(prom, 'up{job="llm-model-servers"}', "namespace", "pod", "model", "variant")
    assert up == {
        ("llm", "l40s-0", "llama", "l40s"): 1,
        ("llm", "l40s-1", "llama", "l40s"): 1,
        ("llm", "h100-0", "llama", "h100"): 1,
        ("team", "small-0", "small", "small-l40s"): 1,
    }
    assert values(prom, 'up{job="llm-platform-autoscaler"}', "namespace", "pod") == {("wva-system", "autoscaler-0"): 1}


def test_the_autoscalers_per_pod_queries_find_vllm_series(prom: RunningPrometheus) -> None:
    kv = values(prom, "max by (namespace, pod) (max_over_time(vllm:kv_cache_usage_perc[1m]))", "namespace", "pod")
    assert kv == {("llm", "l40s-0"): 0.5, ("llm", "l40s-1"): 0.7, ("llm", "h100-0"): 0.2, ("team", "small-0"): 0.1}


def test_recording_rules_per_variant_and_model(prom: RunningPrometheus) -> None:
    by_variant = ("namespace", "model", "variant")
    l40s, h100, small = ("llm", "llama", "l40s"), ("llm", "llama", "h100"), ("team", "small", "small-l40s")
    assert values(prom, rules.REPLICAS, *by_variant) == {l40s: 2, h100: 1, small: 1}
    assert values(prom, rules.COST_PER_HOUR, *by_variant) == {l40s: 10, h100: 40, small: 3}
    assert values(prom, rules.KV_USAGE, *by_variant) == pytest.approx({l40s: 0.6, h100: 0.2, small: 0.1})
    assert values(prom, rules.WAITING, *by_variant) == {l40s: 4, h100: 0, small: 0}
    assert values(prom, rules.RUNNING, *by_variant) == {l40s: 10, h100: 2, small: 1}
    assert all(rate > 0 for rate in values(prom, rules.REQUEST_RATE, *by_variant).values())
    # Every first token took 0.3 s: p99 interpolates in the (0.25, 0.5] bucket; small's 0.08 s in (0.05, 0.1].
    ttft = values(prom, rules.MODEL_TTFT_P99, "namespace", "model")
    assert ttft == pytest.approx({("llm", "llama"): 0.25 + 0.25 * 0.99, ("team", "small"): 0.05 + 0.05 * 0.99})
    assert values(prom, rules.TTFT_SLO, "model", "model_id") == {("llama", LLAMA): 2, ("small", "meta/small"): 2}


def dashboard_queries(board: dict[str, Any]) -> dict[str, list[str]]:
    """Each panel's queries, with Grafana's variables as a user sees them with everything selected."""
    found = {}
    for panel in board["panels"]:
        exprs = []
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            exprs.append(re.sub(r"\$[a-z_]+", ".*", expr))
        found[panel["title"]] = exprs
    return found


@pytest.mark.parametrize("board", dashboards.dashboards(), ids=lambda b: b["uid"])
def test_every_dashboard_query_returns_data(prom: RunningPrometheus, board: dict[str, Any]) -> None:
    empty = [
        (title, expr) for title, exprs in dashboard_queries(board).items() for expr in exprs if not prom.query(expr)
    ]
    assert empty == []


def test_main_dashboard_panels_show_per_pod_and_per_model_values(prom: RunningPrometheus) -> None:
    platform = dashboard_queries(dashboards.platform_dashboard())
    vllm = dashboard_queries(dashboards.vllm_dashboard())
    assert values(prom, platform["Cost now (USD/h)"][0]) == {(): 53}
    assert values(prom, platform["Replicas now"][0]) == {(): 4}
    assert values(prom, platform["Replicas by variant"][0], "model", "variant") == {
        ("llama", "l40s"): 2,
        ("llama", "h100"): 1,
        ("small", "small-l40s"): 1,
    }
    p99, slo = platform["Time to first token"][2], platform["Time to first token"][3]
    assert values(prom, p99, "model") == pytest.approx({("llama",): 0.4975, ("small",): 0.0995})
    assert values(prom, slo, "model") == {("llama",): 2, ("small",): 2}
    desired = values(prom, platform["Autoscaler: desired and current replicas"][0], "model_id", "variant")
    assert desired == {(LLAMA, "l40s"): 3}
    decisions = values(prom, platform["Autoscaler: decisions"][0], "variant", "direction", "reason")
    assert set(decisions) == {("l40s", "up", "saturated")}
    assert values(prom, vllm["KV-cache usage"][0], "pod") == {
        ("l40s-0",): 0.5,
        ("l40s-1",): 0.7,
        ("h100-0",): 0.2,
        ("small-0",): 0.1,
    }
    e2e = values(prom, vllm["End-to-end request latency (p99)"][0], "pod")
    assert e2e == pytest.approx(
        {(p,): 2.5 + 2.5 * 0.99 for p in ("l40s-0", "l40s-1", "h100-0")} | {("small-0",): 0.5 + 0.5 * 0.99}
    )
