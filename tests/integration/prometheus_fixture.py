"""Prometheus on loopback scraping simulated pods exactly as a PodMonitor makes it scrape them in the cluster.

Reusable by any test that needs real PromQL over the platform's series:
- `SimulatedVllmServer`: one model-server pod with vLLM's metric names and labels, its Kubernetes pod labels and
  the name of its metrics port; set `kv`, `waiting`, `running`, observe `ttft`, `itl`, `e2e`, count tokens.
- `SimulatedAutoscaler`: the autoscaler's own Telemetry served as its pod would serve it.
- `pod_monitor_job(monitor, namespace, pods)`: the scrape job the Prometheus Operator generates for a PodMonitor
  (keep by selector and port name, the `namespace`/`container`/`pod`/`job`/`endpoint` target labels, then the
  monitor's own relabelings), with the pods as static targets carrying the labels Kubernetes discovery gives them.
- `run_prometheus(jobs, rule_files, workdir)`: Prometheus with those jobs and rules, 1 s scrape and evaluation
  interval, always stopped.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

from autoscaler.api import AUTOSCALER_APP, AUTOSCALER_METRICS_PORT_NAME, SERVING_PORT_NAME
from autoscaler.telemetry import Telemetry
from components.monitoring.scraping import APP_NAME_LABEL, pod_label_meta
from tests.integration.prometheus import SimulatedVllm, _exposition_server

E2E_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
CONTAINER = "server"


class Pod(Protocol):
    """What Kubernetes discovery knows of a pod that serves metrics on a loopback port."""

    namespace: str
    pod: str
    pod_labels: dict[str, str]
    port_name: str
    port: int


@dataclass
class SimulatedVllmServer(SimulatedVllm):
    """A model-server pod: vLLM's metrics (see SimulatedVllm) plus token counters and end-to-end latency."""

    pod_labels: dict[str, str] = field(default_factory=dict)
    port_name: str = SERVING_PORT_NAME

    def __post_init__(self) -> None:
        super().__post_init__()
        labels = ("model_name", "engine")
        r = self.registry
        self.prompt_tokens = Counter("vllm:prompt_tokens", "prompt tokens", labels, registry=r).labels(
            self.model_name, "0"
        )
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "E2E", labels, buckets=E2E_BUCKETS, registry=r).labels(
            self.model_name, "0"
        )

    def serve(self, requests: int, ttft_s: float, itl_s: float, e2e_s: float, tokens: int = 100) -> None:
        """Finish `requests` requests, each with these latencies and `tokens` prompt and generated tokens."""
        for _ in range(requests):
            self.success.inc()
            self.ttft.observe(ttft_s)
            self.itl.observe(itl_s)
            self.e2e.observe(e2e_s)
            self.prompt_tokens.inc(tokens)
            self.generated.inc(tokens)


class SimulatedAutoscaler:
    """The autoscaler's pod: its real Telemetry (metric names and labels) on a loopback port."""

    def __init__(self, namespace: str, pod: str) -> None:
        self.namespace = namespace
        self.pod = pod
        self.pod_labels = {APP_NAME_LABEL: AUTOSCALER_APP}
        self.port_name = AUTOSCALER_METRICS_PORT_NAME
        self.telemetry = Telemetry()
        self.server = _exposition_server(self.telemetry.registry)
        self.port = int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def discovered_labels(pod: Pod) -> dict[str, str]:
    """The `__meta_kubernetes_pod_*` labels Prometheus' Kubernetes discovery gives a running pod's port."""
    found = {
        "__meta_kubernetes_namespace": pod.namespace,
        "__meta_kubernetes_pod_name": pod.pod,
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_container_name": CONTAINER,
        "__meta_kubernetes_pod_container_port_name": pod.port_name,
    }
    for key, value in pod.pod_labels.items():
        found[pod_label_meta(key)] = value
        found[pod_label_meta(key).replace("_pod_label_", "_pod_labelpresent_", 1)] = "true"
    return found


def _relabeling(crd: dict[str, Any]) -> dict[str, Any]:
    """A PodMonitor relabeling (camelCase) as a Prometheus relabel_config."""
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): value for key, value in crd.items()}


def pod_monitor_job(monitor: dict[str, Any], monitor_namespace: str, pods: Sequence[Pod]) -> dict[str, Any]:
    """The scrape job the Prometheus Operator writes for `monitor` (one endpoint), over these pods."""
    endpoint = monitor["podMetricsEndpoints"][0]
    selected_namespaces = monitor.get("namespaceSelector", {})
    in_scope = [
        p for p in pods if selected_namespaces.get("any") or p.namespace in selected_namespaces.get("matchNames", [])
    ]
    keep = [
        {
            "action": "keep",
            "source_labels": [pod_label_meta(k), pod_label_meta(k).replace("_pod_label_", "_pod_labelpresent_", 1)],
            "regex": f"({re.escape(v)});true",
        }
        for k, v in monitor["selector"]["matchLabels"].items()
    ]
    operator = [
        *keep,
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": endpoint["port"]},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": f"{monitor_namespace}/{monitor['name']}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    return {
        "job_name": f"podMonitor/{monitor_namespace}/{monitor['name']}/0",
        "metrics_path": endpoint.get("path", "/metrics"),
        "static_configs": [{"targets": [f"127.0.0.1:{p.port}"], "labels": discovered_labels(p)} for p in in_scope],
        "relabel_configs": operator + [_relabeling(r) for r in endpoint.get("relabelings", [])],
    }
