"""The controller end to end against a local Kubernetes API stand-in (real client, real HTTP).

Prometheus answers come from a canned query function here; the PromQL itself runs against a real Prometheus in
tests/integration.
"""

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.prometheus_connect import RETRY_ON_STATUS
from urllib3.util.retry import Retry

from autoscaler.api import (
    METRIC_VARIANT_CAPACITY,
    THRESHOLDS_CONFIGMAP,
    Condition,
    serving_labels,
    spec_from_stack_model,
)
from autoscaler.controller import (
    Controller,
    Settings,
    alarming,
    capacity_condition,
    hold_cause,
    metrics_condition,
    previous_conditions,
    ready_condition,
    since,
    target_condition,
    unresolved_target,
)
from autoscaler.engine import Decision
from autoscaler.kube import Kube
from autoscaler.leader import LeaderElector
from autoscaler.metrics import PrometheusAuth
from autoscaler.observe import variant_status
from tests.conftest import stack_config
from tests.kube_standin import Cluster, Fault, running

NS = "llm"
MODEL = stack_config("prod")["models"][0]
MODEL_ID = MODEL["modelID"]
VARIANTS = [v["name"] for v in MODEL["variants"]]
NOW = 1_000_000.0
QUERIES = Settings(namespace="wva-system").queries


class Prometheus:
    """Canned per-pod values, answered in the shape prometheus-api-client returns."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, float]] = {}
        self.model_name = MODEL_ID
        self.retention = 50.0
        self.upstream: float | None = None
        self.down = False
        self.queries: list[str] = []

    def __call__(self, promql: str) -> list[dict[str, Any]]:
        self.queries.append(promql)
        if self.down:
            raise ConnectionError("connection refused")
        if promql == QUERIES.retention:
            return [{"metric": {"namespace": NS, "model_name": self.model_name}, "value": [NOW, str(self.retention)]}]
        if promql in (QUERIES.histograms, QUERIES.shape):
            return []
        if promql == QUERIES.upstream:
            return (
                [{"metric": {"namespace": NS, "model_name": self.model_name}, "value": [NOW, str(self.upstream)]}]
                if self.upstream is not None
                else []
            )
        name = next(n for n, q in QUERIES.per_pod.items() if q.promql == promql)
        out = []
        for pod, values in self.pods.items():
            labels = {"namespace": NS, "pod": pod, "model_name": self.model_name}
            if name == "model":
                out.append({"metric": labels, "value": [NOW, "0"]})
            elif name in values:
                out.append({"metric": labels, "value": [NOW, str(values[name])]})
        return out

    def load(self, pod: str, kv: float, queue: float, throughput: float = 1.0, itl: float = 0.05) -> None:
        self.pods[pod] = {
            "kv": kv,
            "queue": queue,
            "throughput": throughput,
            "itl": itl,
            "running": 4,
            "last_seen": NOW - 5,
        }


def variant_autoscaling() -> dict[str, Any]:
    spec = spec_from_stack_model(MODEL).model_dump(by_alias=True, exclude_none=True)
    return {
        "apiVersion": "wva.llm-d.io/v1alpha1",
        "kind": "VariantAutoscaling",
        "metadata": {"name": "llama-70b", "namespace": NS, "uid": "u-1"},
        "spec": spec,
    }


def serving_cluster() -> Cluster:
    """The prod model's VariantAutoscaling, two ready L40S replicas, A100 and H100 at zero."""
    c = Cluster()
    c.put("variantautoscalings", variant_autoscaling())
    for name, replicas in zip(VARIANTS, (2, 0, 0), strict=True):
        c.add_deployment(NS, name, replicas, labels=serving_labels("llama-70b", name))
    for i in range(2):
        c.add_pod(NS, f"{VARIANTS[0]}-{i}", serving_labels("llama-70b", VARIANTS[0]))
    return c


@pytest.fixture
def cluster() -> Cluster:
    c = serving_cluster()
    c.put("configmaps", {"metadata": {"name": THRESHOLDS_CONFIGMAP, "namespace": "wva-system"}, "data": {}})
    return c


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[Kube]:
    with running(cluster) as api:
        yield Kube(api, request_timeout_s=1.0)


@pytest.fixture
def controller(kube: Kube) -> Iterator[tuple[Controller, Prometheus]]:
    prometheus = Prometheus()
    yield Controller(kube, prometheus, Settings(namespace="wva-system", mode="wva-v1"), clock=lambda: NOW), prometheus


def saturate(prometheus: Prometheus) -> None:
    prometheus.load(f"{VARIANTS[0]}-0", 0.75, 2)
    prometheus.load(f"{VARIANTS[0]}-1", 0.76, 2)


def status(cluster: Cluster) -> dict[str, Any]:
    found = cluster.get("variantautoscalings", NS, "llama-70b")
    assert found is not None
    return dict(found["status"])


def condition(cluster: Cluster, kind: str) -> dict[str, Any]:
    return next(c for c in status(cluster)["conditions"] if c["type"] == kind)


def test_saturated_model_scales_the_cheapest_variant_through_the_scale_subresource(
    cluster: Cluster, controller: tuple[Controller, Prometheus]
) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 3
    assert ("PUT", f"/apis/apps/v1/namespaces/{NS}/deployments/llama-70b-l40s/scale") in cluster.requests
    assert [e["reason"] for e in cluster.events] == ["Scaled"]
    assert condition(cluster, "Ready")["status"] == "True"
    assert status(cluster)["lastDecision"]["action"] == "scale-up"
    desired = {v["name"]: v["desiredReplicas"] for v in status(cluster)["variants"]}
    assert desired == {"llama-70b-l40s": 3, "llama-70b-a100": 0, "llama-70b-h100": 0}
    assert len(prometheus.queries) == len(QUERIES.per_pod) + 4


def test_the_number_of_queries_does_not_grow_with_models(
    cluster: Cluster, controller: tuple[Controller, Prometheus]
) -> None:
    ctl, prometheus = controller
    for i in range(5):
        va = variant_autoscaling()
        va["metadata"]["name"] = f"copy-{i}"
        cluster.put("variantautoscalings", va)
    ctl.reconcile()
    assert len(prometheus.queries) == len(QUERIES.per_pod) + 4


def test_refuses_a_deployment_an_hpa_owns(cluster: Cluster, controller: tuple[Controller, Prometheus]) -> None:
    ctl, prometheus = controller
    cluster.put(
        "horizontalpodautoscalers",
        {
            "metadata": {"name": "h", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "llama-70b-a100", "apiVersion": "apps/v1"},
                "maxReplicas": 3,
            },
        },
    )
    saturate(prometheus)
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 2
    resolved = condition(cluster, "TargetResolved")
    assert resolved["status"] == "False" and resolved["reason"] == "OwnedByHPA"
    assert "llama-70b-a100" in resolved["message"]
    assert [e["type"] for e in cluster.events] == ["Warning"]


def test_dry_run_decides_but_never_scales(kube: Kube, cluster: Cluster) -> None:
    prometheus = Prometheus()
    saturate(prometheus)
    Controller(
        kube, prometheus, Settings(namespace="wva-system", mode="wva-v1", dry_run=True), clock=lambda: NOW
    ).reconcile()
    assert not any(method == "PUT" for method, _ in cluster.requests)
    assert condition(cluster, "Ready")["message"].startswith("dry run: scale-up")


def test_missing_series_hold_and_say_which_model_names_exist(
    cluster: Cluster, controller: tuple[Controller, Prometheus]
) -> None:
    ctl, prometheus = controller
    prometheus.model_name = "/models/llama"  # served without --served-model-name
    saturate(prometheus)
    prometheus.pods = {f"other-{i}": v for i, v in enumerate(prometheus.pods.values())}
    ctl.reconcile()
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 2
    metrics = condition(cluster, "MetricsAvailable")
    assert metrics["status"] == "False"
    assert (
        f"no series for the pods of model_name={MODEL_ID} in namespace {NS}; model names seen: /models/llama"
        in metrics["message"]
    )
    assert [e["reason"] for e in cluster.events] == ["MetricsUnavailable"], (
        "one Warning when the hold starts, not every cycle"
    )


def test_series_of_deleted_pods_are_ignored(cluster: Cluster, controller: tuple[Controller, Prometheus]) -> None:
    ctl, prometheus = controller
    prometheus.load(f"{VARIANTS[0]}-0", 0.2, 0)
    prometheus.load(f"{VARIANTS[0]}-1", 0.2, 0)
    prometheus.load(f"{VARIANTS[0]}-deleted", 0.99, 40)  # still visible for a minute under max_over_time
    ctl.reconcile()
    # Had the deleted pod counted, 3 reporting != 2 replicas would hold (seed mode); its saturation would scale up.
    assert condition(cluster, "MetricsAvailable")["message"] == "2 replicas reporting"
    assert cluster.replicas(NS, "llama-70b-l40s") == 1


def test_prometheus_down_holds_and_resumes(cluster: Cluster, controller: tuple[Controller, Prometheus]) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    prometheus.down = True
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 2
    metrics = condition(cluster, "MetricsAvailable")
    assert metrics["status"] == "False"
    assert (
        metrics["message"] == "Prometheus at http://localhost:9090 unreachable (connection refused); holding replicas"
    )
    prometheus.down = False
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 3
    assert condition(cluster, "MetricsAvailable")["status"] == "True"


def test_conflict_is_retried_without_double_scaling(
    cluster: Cluster, controller: tuple[Controller, Prometheus]
) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    cluster.faults.append(Fault("PUT", r"/scale$", status=409, times=2))
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 3
    assert sum(1 for m, p in cluster.requests if m == "PUT" and p.endswith("/scale")) == 3


def test_server_errors_are_retried_next_cycle(cluster: Cluster, controller: tuple[Controller, Prometheus]) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    cluster.faults.append(Fault("PUT", r"/scale$", status=500))
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 2
    ready = condition(cluster, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ScaleFailed"
    assert ready["message"] == "retrying next cycle: llama-70b-l40s: Kubernetes API answered 500 Internal Server Error"
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 3


def test_a_write_that_times_out_after_the_server_applied_it_is_not_applied_twice(
    cluster: Cluster, controller: tuple[Controller, Prometheus]
) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    cluster.faults.append(Fault("PUT", r"/scale$", status=0, delay_s=1.5))
    ctl.reconcile()
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 3


def test_a_list_that_fails_holds_says_why_and_the_next_pass_recovers(
    cluster: Cluster, controller: tuple[Controller, Prometheus]
) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    cluster.faults.append(Fault("GET", r"/apis/apps/v1/deployments$", status=503, times=10))
    ctl.reconcile()
    ready = condition(cluster, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "KubernetesUnavailable")
    assert ready["message"] == "holding replicas: Kubernetes API answered 503 Service Unavailable"
    assert ctl.telemetry.registry.get_sample_value("wva_reconcile_errors_total", {"call": "kubernetes"}) == 1
    assert ctl.telemetry.registry.get_sample_value("wva_last_reconcile_timestamp_seconds") == 0, "pass incomplete"
    cluster.faults.clear()
    ctl.reconcile()
    assert cluster.replicas(NS, "llama-70b-l40s") == 3


def test_bad_thresholds_keep_the_last_good_ones(cluster: Cluster, controller: tuple[Controller, Prometheus]) -> None:
    ctl, _ = controller
    configmap = cluster.get("configmaps", "wva-system", THRESHOLDS_CONFIGMAP)
    assert configmap is not None
    configmap["data"] = {"default": "kvCacheThreshold: 0.5\n"}
    ctl.reconcile()
    assert ctl.thresholds[0].kv_cache_threshold == 0.5
    configmap["data"] = {"default": "kvCacheThreshold: 7\n"}
    ctl.reconcile()
    ctl.reconcile()
    assert ctl.thresholds[0].kv_cache_threshold == 0.5
    warnings = [e for e in cluster.events if e["reason"] == "InvalidThresholds"]
    assert len(warnings) == 1 and warnings[0]["involvedObject"]["kind"] == "ConfigMap"
    assert "entry 'default'" in warnings[0]["message"]


def test_only_one_replica_leads(kube: Kube) -> None:
    clock = [NOW]
    a = LeaderElector(kube, "wva-system", "autoscaler", "a", lease_seconds=30, clock=lambda: clock[0])
    b = LeaderElector(kube, "wva-system", "autoscaler", "b", lease_seconds=30, clock=lambda: clock[0])
    assert a.try_acquire() and not b.try_acquire()
    clock[0] += 20
    assert a.try_acquire() and not b.try_acquire(), "renewed in time"
    clock[0] += 31
    assert b.try_acquire() and not a.try_acquire(), "expired: taken over"
    b.release()
    assert a.try_acquire()


def test_lease_race_is_lost_not_shared(kube: Kube, cluster: Cluster) -> None:
    a = LeaderElector(kube, "wva-system", "autoscaler", "a", clock=lambda: NOW)
    assert a.try_acquire()
    cluster.faults.append(Fault("PUT", r"/leases/", status=409))
    with pytest.raises(ApiException):
        cluster.faults.append(Fault("GET", r"/leases/", status=500))
        a.try_acquire()
    assert not a.try_acquire()


def test_default_mode_exports_the_capacity_it_plans_a_replica_with(kube: Kube) -> None:
    prometheus = Prometheus()
    ctl = Controller(kube, prometheus, Settings(namespace="wva-system"), clock=lambda: NOW)
    prometheus.load(f"{VARIANTS[0]}-0", 0.3, 0)
    prometheus.load(f"{VARIANTS[0]}-1", 0.3, 0)
    ctl.reconcile()
    labels = {"model_id": MODEL_ID, "model_namespace": NS, "variant": VARIANTS[0], "accelerator": "L40S"}
    planned = ctl.telemetry.registry.get_sample_value(METRIC_VARIANT_CAPACITY, labels)
    # Within the SLO for 99% of requests: below what an L40S serves at a mean inter-token latency of 100 ms.
    assert planned is not None and 0 < planned < 1.7


def test_pods_the_scheduler_cannot_place_reach_the_engine_with_its_message(kube: Kube, cluster: Cluster) -> None:
    """The engine's status counts a variant's Unschedulable pods, read from the pod list the controller has."""
    message = "0/12 nodes are available: 12 Insufficient nvidia.com/gpu."
    labels = serving_labels("llama-70b", VARIANTS[2])
    cluster.add_deployment(NS, VARIANTS[2], 2, ready=0, labels=labels)
    cluster.add_pod(NS, f"{VARIANTS[2]}-0", labels, ready=False, unschedulable=message)
    cluster.add_pod(NS, f"{VARIANTS[2]}-1", labels, ready=False)
    pods = kube.serving_pods(0.0)
    assert {p.name: p.unschedulable for p in pods if p.variant == VARIANTS[2]} == {
        f"{VARIANTS[2]}-0": message,
        f"{VARIANTS[2]}-1": None,
    }
    status = variant_status({v: v for v in VARIANTS}, NS, kube.serving_deployments(), pods, 300.0)
    assert (status[VARIANTS[2]].unschedulable, status[VARIANTS[2]].scheduler_message) == (1, message)
    assert status[VARIANTS[0]].unschedulable == 0


def test_unschedulable_pods_limit_their_variant_and_the_plan_moves_with_the_condition_set() -> None:
    """H100 pods created 20 minutes ago are still Unschedulable: the H100 variant is capped at what it got plus one,
    the saturated model grows on another variant, and the object says why."""
    cluster = serving_cluster()
    message = "0/12 nodes are available: 12 Insufficient nvidia.com/gpu."
    h100 = serving_labels("llama-70b", VARIANTS[2])
    cluster.add_deployment(NS, VARIANTS[2], 3, ready=0, labels=h100)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 1200))
    for i in range(3):
        cluster.add_pod(NS, f"{VARIANTS[2]}-{i}", h100, ready=False, unschedulable=message, created=created)
    prometheus = Prometheus()
    saturate(prometheus)
    with running(cluster) as api:
        ctl = Controller(Kube(api), prometheus, Settings(namespace="wva-system"), clock=lambda: NOW)
        ctl.reconcile()
    assert cluster.replicas(NS, VARIANTS[2]) <= 1  # nothing placed: at most one kept asked for
    assert cluster.replicas(NS, VARIANTS[0]) + cluster.replicas(NS, VARIANTS[1]) > 2
    limited = condition(cluster, "CapacityLimited")
    assert limited["status"] == "True" and VARIANTS[2] in limited["message"] and message in limited["message"]
    assert "CapacityLimited" not in [e["reason"] for e in cluster.events if e["type"] == "Normal"]
    assert "Unschedulable" in [e["reason"] for e in cluster.events]
    exported = ctl.telemetry.capacity_limited.labels(MODEL_ID, NS, VARIANTS[2], "H100")._value.get()
    assert exported == 1


def at(offset_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + offset_s))


def test_cold_starts_are_learned_from_the_pod_list_and_a_pod_past_twice_that_stops_counting() -> None:
    """The H100 replicas that started took 5 minutes from creation to Ready; one created 30 minutes ago is placed
    but still not ready (a crash loop): past twice the cold start, its variant is capacity-limited by it."""
    cluster = serving_cluster()
    h100 = serving_labels("llama-70b", VARIANTS[2])
    cluster.add_deployment(NS, VARIANTS[2], 3, ready=2, labels=h100)
    for i in range(2):
        cluster.add_pod(NS, f"{VARIANTS[2]}-{i}", h100, created=at(-3600), ready_at=at(-3300))
    cluster.add_pod(NS, f"{VARIANTS[2]}-2", h100, ready=False, created=at(-1800))
    prometheus = Prometheus()
    saturate(prometheus)
    for i in range(2):
        prometheus.load(f"{VARIANTS[2]}-{i}", 0.5, 0)
    with running(cluster) as api:
        kube = Kube(api)
        status = variant_status({v: v for v in VARIANTS}, NS, kube.serving_deployments(), kube.serving_pods(NOW), 300)
        assert status[VARIANTS[2]].cold_start_s == 300 and status[VARIANTS[2]].starting_s == (1800,)
        ctl = Controller(kube, prometheus, Settings(namespace="wva-system"), clock=lambda: NOW)
        ctl.reconcile()
    limited = condition(cluster, "CapacityLimited")
    assert (
        limited["status"] == "True" and "1 pod(s) not ready after 600s (2x the 300s cold start)" in limited["message"]
    )
    assert cluster.replicas(NS, VARIANTS[2]) <= 3


# --- status a person can read, and the log ----------------------------------------------------------------------


def quick(url: str) -> PrometheusConnect:
    """Prometheus as `autoscaler.metrics.connect` reaches it (retried on errors and on the library's statuses, with
    a timeout), but retried once only and at once."""
    return PrometheusConnect(url, timeout=1, retry=Retry(total=1, backoff_factor=0, status_forcelist=RETRY_ON_STATUS))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_unreachable_is_said_in_words_naming_its_url(kube: Kube, cluster: Cluster) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(namespace="wva-system", prometheus=PrometheusAuth(url, timeout_s=1))
    Controller(kube, quick(url).custom_query, settings, clock=lambda: NOW).reconcile()
    message = condition(cluster, "MetricsAvailable")["message"]
    assert message == f"Prometheus at {url} unreachable (connection refused); holding replicas"
    assert (
        condition(cluster, "Ready")["message"]
        == f"holding replicas: Prometheus at {url} unreachable (connection refused)"
    )
    assert cluster.replicas(NS, "llama-70b-l40s") == 2


def test_prometheus_that_does_not_answer_is_said_in_words(kube: Kube, cluster: Cluster) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = Settings(namespace="wva-system", prometheus=PrometheusAuth(url, timeout_s=1))
        Controller(kube, quick(url).custom_query, settings, clock=lambda: NOW).reconcile()
    message = condition(cluster, "MetricsAvailable")["message"]
    assert message == f"Prometheus at {url} did not answer within 1s; holding replicas"
    assert "Traceback" not in message and "%2C" not in message and "query" not in message


FORBIDDEN = (
    'pods is forbidden: User "system:serviceaccount:wva-system:llm-platform-autoscaler" cannot list resource "pods"'
    ' in API group "" at the cluster scope'
)


def test_a_forbidden_list_is_said_in_the_api_servers_words(
    cluster: Cluster, controller: tuple[Controller, Prometheus], caplog: pytest.LogCaptureFixture
) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    ctl.reconcile()  # conditions from a good pass, kept while the cluster cannot be read
    cluster.faults.append(Fault("GET", r"^/api/v1/pods$", status=403, message=FORBIDDEN, times=2))
    with caplog.at_level(logging.INFO, logger="autoscaler"):
        ctl.reconcile()
        ctl.reconcile()
    ready = condition(cluster, "Ready")
    assert ready["message"] == f"holding replicas: Kubernetes API: {FORBIDDEN}"
    assert condition(cluster, "TargetResolved")["status"] == "True"
    assert cluster.replicas(NS, "llama-70b-l40s") == 3, "held at what the last good pass set"
    holds = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in holds] == [f"{MODEL_ID} in {NS}: holding replicas: Kubernetes API: {FORBIDDEN}"]


def test_a_change_is_logged_with_its_model_variant_replicas_and_reason(
    controller: tuple[Controller, Prometheus], caplog: pytest.LogCaptureFixture
) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    with caplog.at_level(logging.INFO, logger="autoscaler"):
        ctl.reconcile()
    (line,) = caplog.records
    fields = {k: getattr(line, k) for k in ("model", "namespace", "variant", "from", "to", "reason")}
    assert fields == {
        "model": MODEL_ID,
        "namespace": NS,
        "variant": VARIANTS[0],
        "from": 2,
        "to": 3,
        "reason": fields["reason"],
    }
    assert fields["reason"].startswith("saturating (") and fields["reason"].endswith("+1 llama-70b-l40s")
    assert line.getMessage() == f"{MODEL_ID} in {NS}: {VARIANTS[0]} 2 -> 3 replicas ({fields['reason']})"


def test_a_hold_is_logged_once_per_cause_again_when_it_changes_and_when_it_clears(
    controller: tuple[Controller, Prometheus], caplog: pytest.LogCaptureFixture
) -> None:
    ctl, prometheus = controller
    saturate(prometheus)
    prometheus.down = True
    with caplog.at_level(logging.INFO, logger="autoscaler"):
        ctl.reconcile()
        ctl.reconcile()  # the same cause: said once
        prometheus.down = False
        prometheus.model_name = "/models/llama"  # another cause
        prometheus.pods = {f"other-{i}": v for i, v in enumerate(prometheus.pods.values())}
        ctl.reconcile()
        ctl.reconcile()
        prometheus.model_name = MODEL_ID
        saturate(prometheus)
        ctl.reconcile()  # cleared, and a change
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    prefix = f"{MODEL_ID} in {NS}"
    assert said[:2] == [
        (
            "WARNING",
            f"{prefix}: holding replicas: Prometheus at http://localhost:9090 unreachable (connection refused)",
        ),
        (
            "WARNING",
            f"{prefix}: holding replicas: no series for the pods of model_name={MODEL_ID} in namespace {NS};"
            " model names seen: /models/llama",
        ),
    ]
    assert said[2] == ("INFO", f"{prefix}: holding no more")
    assert said[3][1].startswith(f"{prefix}: {VARIANTS[0]} 2 -> 3 replicas") and len(said) == 4


def test_a_hold_whose_numbers_move_is_the_same_hold() -> None:
    from autoscaler.controller import gist

    assert gist("metrics are stale: newest sample 75s old (limit 60s)") == gist(
        "metrics are stale: newest sample 105s old (limit 60s)"
    )
    assert gist("metrics are stale: newest sample 75s old") != gist("contradictory metrics from pod p (variant v)")


def test_leadership_taken_and_lost_is_logged(kube: Kube, caplog: pytest.LogCaptureFixture) -> None:
    clock = [NOW]
    a = LeaderElector(kube, "wva-system", "autoscaler", "a", lease_seconds=30, clock=lambda: clock[0])
    b = LeaderElector(kube, "wva-system", "autoscaler", "b", lease_seconds=30, clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="autoscaler"):
        a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()  # renewals and standing by: said once
        clock[0] += 31
        b.try_acquire(), a.try_acquire()
        b.release()
    assert [r.getMessage() for r in caplog.records] == [
        "a leads: it holds the Lease wva-system/autoscaler",
        "b stands by: a holds the Lease wva-system/autoscaler",
        "b leads: it holds the Lease wva-system/autoscaler",
        "a stands by: b holds the Lease wva-system/autoscaler",
        "b handed the Lease wva-system/autoscaler over",
    ]


# --- the status's conditions, as pure functions -----------------------------------------------------------------

AT = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("unresolved", "metrics_problem", "cause"),
    [
        (None, None, None),
        (None, "", None),
        (("OwnedByHPA", "an HPA targets d"), None, "an HPA targets d"),
        (None, "metrics are stale", "metrics are stale"),
        (("DeploymentNotFound", "no Deployment d"), "no metrics", "no Deployment d; no metrics"),
    ],
)
def test_a_model_holds_on_unresolved_targets_and_on_metrics_problems(
    unresolved: tuple[str, str] | None, metrics_problem: str | None, cause: str | None
) -> None:
    assert hold_cause(unresolved, metrics_problem) == cause


@pytest.mark.parametrize(
    ("deployments", "hpas", "found"),
    [
        ({("ns", "a"), ("ns", "b")}, set(), None),
        ({("ns", "a")}, {("ns", "a")}, ("DeploymentNotFound", "no Deployment b in namespace ns")),
        ({("ns", "a"), ("other", "b")}, set(), ("DeploymentNotFound", "no Deployment b in namespace ns")),
        (
            {("ns", "a"), ("ns", "b")},
            {("ns", "b")},
            ("OwnedByHPA", "a HorizontalPodAutoscaler targets b: remove it or this VariantAutoscaling"),
        ),
    ],
)
def test_targets_resolve_when_every_deployment_exists_and_no_hpa_owns_one(
    deployments: set[tuple[str, str]], hpas: set[tuple[str, str]], found: tuple[str, str] | None
) -> None:
    assert unresolved_target(namespace="ns", targets=["a", "b"], deployments=deployments, hpa_targets=hpas) == found


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (target_condition(None, deployments=3, at=AT), ("True", "Resolved", "3 Deployments found")),
        (target_condition(("OwnedByHPA", "m"), deployments=3, at=AT), ("False", "OwnedByHPA", "m")),
        (metrics_condition(None, reporting=2, at=AT), ("True", "MetricsFresh", "2 replicas reporting")),
        (metrics_condition("p", reporting=0, at=AT), ("False", "MetricsUnavailable", "p; holding replicas")),
        (capacity_condition({}, at=AT), ("False", "Supplied", "every variant's pods are placed")),
        (
            capacity_condition({"b": "no GPU", "a": "none"}, at=AT),
            ("True", "Unschedulable", "a: none; b: no GPU; planning the other variants"),
        ),
        (
            ready_condition(held="p", failed=["d: 500"], decision=Decision({}, "none", "r"), dry_run=False, at=AT),
            ("False", "Holding", "holding replicas: p"),
        ),
        (
            ready_condition(held=None, failed=["d: 500"], decision=Decision({}, "none", "r"), dry_run=False, at=AT),
            ("False", "ScaleFailed", "retrying next cycle: d: 500"),
        ),
        (
            ready_condition(held=None, failed=[], decision=Decision({}, "scale-up", "r"), dry_run=True, at=AT),
            ("True", "Reconciled", "dry run: scale-up: r"),
        ),
    ],
)
def test_conditions_say_what_a_pass_found(condition: Condition, expected: tuple[str, str, str]) -> None:
    assert (condition.status, condition.reason, condition.message) == expected
    assert condition.last_transition_time == AT


def test_a_condition_keeps_its_transition_time_while_its_status_holds_and_warns_only_when_bad() -> None:
    earlier = "2025-12-31T00:00:00Z"
    old = metrics_condition(None, reporting=2, at=earlier)
    assert since(metrics_condition(None, reporting=3, at=AT), old).last_transition_time == earlier
    assert since(metrics_condition("p", reporting=0, at=AT), old).last_transition_time == AT
    assert since(old, None) == old
    assert alarming(metrics_condition("p", reporting=0, at=AT))
    assert alarming(capacity_condition({"a": "none"}, at=AT))
    assert not alarming(capacity_condition({}, at=AT))
    assert not alarming(ready_condition(held="p", failed=[], decision=Decision({}, "hold", "p"), dry_run=False, at=AT))


def test_previous_conditions_tolerate_missing_fields_and_leave_out_foreign_ones() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "x", "message": "y"},
            ]
        }
    }
    assert previous_conditions(obj, at=AT) == {
        "Ready": Condition(type="Ready", status="True", reason="", message="", last_transition_time=AT)
    }
