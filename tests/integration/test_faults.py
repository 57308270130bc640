"""Faults with real processes: what the autoscaler does, and that nothing is lost (no replica removed, no double
scaling) while they last."""

import time
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusConnect

from autoscaler.controller import Controller, Settings
from autoscaler.kube import Kube
from autoscaler.metrics import PrometheusAuth
from tests.integration.prometheus import PROMETHEUS, SimulatedVllm, prometheus
from tests.kube_standin import running
from tests.test_controller import MODEL_ID, NS, VARIANTS, serving_cluster

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian package prometheus not installed")


def condition(cluster_obj: dict, kind: str) -> dict:  # type: ignore[type-arg]
    return next(c for c in cluster_obj["status"]["conditions"] if c["type"] == kind)


def saturated_pods() -> list[SimulatedVllm]:
    """The two L40S replicas of the seed's first test vector: KV {0.75, 0.75}, queue {2, 2} -> one more replica."""
    pods = [SimulatedVllm(NS, f"{VARIANTS[0]}-{i}", MODEL_ID) for i in range(2)]
    for p in pods:
        p.kv.set(0.75)
        p.waiting.set(2)
    return pods


def test_prometheus_outage_holds_then_resumes(tmp_path: Path) -> None:
    pods = saturated_pods()
    cluster = serving_cluster()
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    try:
        with running(cluster) as api:
            with prometheus(pods, workdir) as prom:
                prom.wait_for("up == 1", 2)
                prom.wait_for("vllm:num_requests_waiting", 2)
                url = prom.url
            # Prometheus is gone: the pass holds, says why in words (where, what failed; no query, no traceback),
            # and removes nothing.
            settings = Settings("wva-system", "wva-v1", prometheus=PrometheusAuth(url))
            controller = Controller(Kube(api), PrometheusConnect(url).custom_query, settings)
            controller.reconcile()
            found = cluster.get("variantautoscalings", NS, "llama-70b")
            assert found is not None
            metrics = condition(found, "MetricsAvailable")
            assert metrics["status"] == "False"
            assert metrics["message"] == f"Prometheus at {url} unreachable (connection refused); holding replicas"
            assert cluster.replicas(NS, VARIANTS[0]) == 2
            assert [e["reason"] for e in cluster.events] == ["MetricsUnavailable"]
            # Back (same data): the pass acts on the metrics again.
            with prometheus(pods, workdir) as prom:
                prom.wait_for("up == 1", 2)
                prom.wait_for("vllm:num_requests_waiting", 2)
                controller.query = PrometheusConnect(prom.url).custom_query
                controller.reconcile()
            found = cluster.get("variantautoscalings", NS, "llama-70b")
            assert found is not None
            assert condition(found, "MetricsAvailable")["status"] == "True"
            assert cluster.replicas(NS, VARIANTS[0]) == 3
    finally:
        for p in pods:
            p.stop()


def test_a_pod_killed_during_a_scale_up_is_not_scaled_twice(tmp_path: Path) -> None:
    pods = saturated_pods()
    cluster = serving_cluster()
    try:
        with running(cluster) as api, prometheus(pods, tmp_path) as prom:
            prom.wait_for("vllm:num_requests_waiting", 2)
            controller = Controller(
                Kube(api), PrometheusConnect(prom.url).custom_query, Settings("wva-system", "wva-v1")
            )
            controller.reconcile()
            assert cluster.replicas(NS, VARIANTS[0]) == 3
            # The new replica is starting and one serving pod dies: 3 desired, 1 ready, 1 reporting.
            deployment = cluster.get("deployments", NS, VARIANTS[0])
            assert deployment is not None
            deployment["status"] = {"replicas": 3, "readyReplicas": 1}
            del cluster.objects["pods"][(NS, f"{VARIANTS[0]}-1")]
            pods[1].stop()
            time.sleep(1)
            for _ in range(3):
                controller.reconcile()
            print([e["message"] for e in cluster.events])
            print(cluster.get("variantautoscalings", NS, "llama-70b")["status"])
            assert cluster.replicas(NS, VARIANTS[0]) == 3, "the in-flight scale-up is neither repeated nor undone"
            found = cluster.get("variantautoscalings", NS, "llama-70b")
            assert found is not None and found["status"]["lastDecision"]["action"] == "hold"
    finally:
        pods[0].stop()
