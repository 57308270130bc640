"""`python -m autoscaler` as its rendered ServiceAccount, under its rendered RBAC, against a real kube-apiserver.

The prod stack is applied for real. There is no Deployment controller or kubelet: the test writes the pods and
Deployment status itself. Prometheus is faked over HTTP with tests/test_controller.py's canned answers, and the
process runs the seed's algorithm (`wva-v1`), whose steps are exact: one replica at a time, none in transition.
"""

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from autoscaler.api import AUTOSCALER_APP, GROUP, LEASE_NAME, PLURAL, SERVING_LABEL, VERSION
from autoscaler.kube import FIELD_MANAGER, Kube
from stack.render import Rendered
from tests import prometheus_api
from tests.envtest.controlplane import ControlPlane, apply_stack, requires_assets
from tests.test_autoscaler_process import free_port, get, start, wait_for
from tests.test_controller import NS, Prometheus

pytestmark = requires_assets
AUTOSCALER_NS = "wva-system"  # the autoscaler's namespace: its ServiceAccount, Lease and thresholds
VA = "llama-70b"


class LivePrometheus(Prometheus):
    """The canned answers, every pod's last sample stamped now: the process runs on the real clock."""

    def __call__(self, promql: str) -> list[dict[str, Any]]:
        for values in self.pods.values():
            values["last_seen"] = time.time()
        return super().__call__(promql)


@contextmanager
def serving(prometheus: Prometheus) -> Iterator[str]:
    """Prometheus's instant-query API on loopback, answered by `prometheus`."""
    with prometheus_api.serving(lambda promql, _: prometheus(promql)) as url:
        yield url


@pytest.fixture(scope="module")
def kubeconfig(
    plane: ControlPlane, rendered_stacks: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The prod stack applied for real, and a kubeconfig with a TokenRequest token of the autoscaler's account."""
    applied = apply_stack(plane, rendered_stacks["prod"], dry_run=False)
    assert applied.errors == []
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token = client.CoreV1Api(plane.admin).create_namespaced_service_account_token(
        AUTOSCALER_APP, AUTOSCALER_NS, request
    )
    return plane.kubeconfig(tmp_path_factory.mktemp("autoscaler") / "kubeconfig", token.status.token)


def play_deployment_controller(api: client.ApiClient) -> dict[str, int]:
    """What the Deployment controller and kubelets would do for the serving Deployments (scale-up only): a ready pod
    per replica from the pod template, named as the canned Prometheus series name them, then the Deployment's
    status. Returns the replicas by Deployment."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    existing = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = [{"type": t, "status": "True", "lastTransitionTime": now} for t in ("PodScheduled", "Ready")]
    replicas = {}
    for deployment in apps.list_namespaced_deployment(NS, label_selector=f"{SERVING_LABEL}=true").items:
        name, want = deployment.metadata.name, deployment.spec.replicas or 0
        template = api.sanitize_for_serialization(deployment.spec.template)
        for pod in (f"{name}-{i}" for i in range(want)):
            if pod not in existing:
                labels = template["metadata"]["labels"]
                body = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod, "labels": labels},
                    "spec": template["spec"],
                }
                core.create_namespaced_pod(NS, body)
                core.patch_namespaced_pod_status(pod, NS, {"status": {"phase": "Running", "conditions": ready}})
        status = {"replicas": want, "readyReplicas": want, "availableReplicas": want, "updatedReplicas": want}
        apps.patch_namespaced_deployment_status(name, NS, {"status": status})
        replicas[name] = want
    return replicas


def load(prometheus: Prometheus, replicas: dict[str, int], kv: float, queue: float) -> None:
    for name, count in replicas.items():
        for i in range(count):
            prometheus.load(f"{name}-{i}", kv, queue)


def desired(api: client.ApiClient) -> dict[str, int]:
    """spec.replicas of the serving Deployments: what the autoscaler wrote."""
    found = client.AppsV1Api(api).list_namespaced_deployment(NS, label_selector=f"{SERVING_LABEL}=true").items
    return {d.metadata.name: d.spec.replicas or 0 for d in found}


def holder(api: client.ApiClient) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, AUTOSCALER_NS)
    except ApiException:
        return None
    return lease.spec.holder_identity if lease.spec else None


def variant_autoscaling(api: client.ApiClient) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, VA)
    return found


def test_the_autoscaler_scales_under_its_own_rbac_and_a_standby_takes_the_lease_over(
    plane: ControlPlane, kubeconfig: Path
) -> None:
    api = plane.admin
    replicas = play_deployment_controller(api)
    before = sum(replicas.values())
    prometheus = LivePrometheus()
    load(prometheus, replicas, kv=0.75, queue=2)  # saturated: the spare KV cache is below the trigger
    ports = [free_port(), free_port()]
    with serving(prometheus) as url:
        options = ("--prometheus-url", url, "--mode", "wva-v1")
        first = start(kubeconfig, "first", ports[0], *options)
        second: subprocess.Popen[bytes] | None = None
        try:
            wait_for(lambda: holder(api) == "first")
            wait_for(lambda: sum(desired(api).values()) == before + 1, timeout=30)
            scaled = client.AppsV1Api(api).read_namespaced_deployment("llama-70b-l40s", NS)  # the cheapest variant
            assert scaled.spec.replicas == replicas["llama-70b-l40s"] + 1
            writers = {(m.manager, m.subresource) for m in scaled.metadata.managed_fields or []}
            assert (FIELD_MANAGER, "scale") in writers
            conditions = {c["type"]: c["status"] for c in variant_autoscaling(api)["status"]["conditions"]}
            assert conditions["TargetResolved"] == conditions["MetricsAvailable"] == "True"
            events = client.CoreV1Api(api).list_namespaced_event(NS).items
            assert any(e.reason == "Scaled" and e.involved_object.name == VA for e in events)

            load(prometheus, desired(api), kv=0.5, queue=1)  # a steady load: every variant holds
            replicas = play_deployment_controller(api)  # the new pod comes up
            wait_for(
                lambda: (
                    {v["name"]: v["readyReplicas"] for v in variant_autoscaling(api)["status"]["variants"]} == replicas
                )
            )
            second = start(kubeconfig, "second", ports[1], *options)
            wait_for(lambda: get(ports[1], "/healthz")[0] == 200)
            assert holder(api) == "first"
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=10) == 0
            wait_for(lambda: holder(api) == "second")
            load(prometheus, replicas, kv=0.75, queue=2)  # and the new leader acts
            wait_for(lambda: sum(desired(api).values()) == before + 2, timeout=30)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(timeout=10)
    for process in (first, second):
        log = process.stderr.read().decode()
        assert "Traceback" not in log and "Forbidden" not in log, log  # every call was allowed and succeeded


def test_a_stale_scale_write_gets_the_servers_conflict(plane: ControlPlane, kubeconfig: Path) -> None:
    """The optimistic concurrency kube.scale relies on, from the server itself and under the autoscaler's RBAC."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        kube, deployment = Kube(api), "llama-70b-h100"
        stale = kube.apps.read_namespaced_deployment_scale(deployment, NS)
        assert kube.scale(NS, deployment, 1)  # another write in between
        stale.spec.replicas = 2
        with pytest.raises(ApiException) as conflict:
            kube.apps.replace_namespaced_deployment_scale(deployment, NS, stale)
        assert conflict.value.status == 409
        assert kube.scale(NS, deployment, 2)  # re-reads, so the absolute target lands
        assert kube.apps.read_namespaced_deployment_scale(deployment, NS).spec.replicas == 2
