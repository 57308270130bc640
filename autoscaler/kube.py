"""The Kubernetes calls the autoscaler makes, and nothing else: a thin layer over the official client.

Reads are cluster-wide lists (a constant number per cycle); writes are the scale subresource with optimistic
concurrency (retried on 409, idempotent because the target is absolute), status merge patches, events and the
leader Lease.
"""

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from autoscaler.api import GROUP, PLURAL, SERVING_LABEL, VARIANT_LABEL, VERSION
from autoscaler.observe import DeploymentState, ServingPod

CONFLICT_RETRIES = 3
FIELD_MANAGER = "llm-platform-autoscaler"


def _utc(when: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(when, dt.UTC)


class Kube:
    def __init__(self, api: client.ApiClient, request_timeout_s: float = 10.0) -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.timeout = request_timeout_s

    # --- reads -------------------------------------------------------------------------------------------------

    def variant_autoscalings(self) -> list[dict[str, Any]]:
        result: Any = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, _request_timeout=self.timeout)
        return list(result.get("items", []))

    def serving_deployments(self) -> dict[tuple[str, str], DeploymentState]:
        items: list[Any] = self.apps.list_deployment_for_all_namespaces(
            label_selector=f"{SERVING_LABEL}=true", _request_timeout=self.timeout
        ).items
        return {
            (d.metadata.namespace, d.metadata.name): DeploymentState(
                desired=d.spec.replicas or 0,
                current=(d.status.replicas or 0) if d.status else 0,
                ready=(d.status.ready_replicas or 0) if d.status else 0,
            )
            for d in items
        }

    def serving_pods(self, now: float) -> list[ServingPod]:
        items: list[Any] = self.core.list_pod_for_all_namespaces(
            label_selector=f"{SERVING_LABEL}=true", _request_timeout=self.timeout
        ).items
        return [
            ServingPod(
                p.metadata.namespace,
                p.metadata.name,
                (p.metadata.labels or {}).get(VARIANT_LABEL, ""),
                ready := getattr(_condition(p, "Ready"), "status", None) == "True",
                _unschedulable(p),
                0.0
                if ready or p.metadata.creation_timestamp is None
                else now - p.metadata.creation_timestamp.timestamp(),
                _ready_after(p) if ready else None,
            )
            for p in items
            if p.metadata.deletion_timestamp is None
        ]

    def hpa_targets(self) -> set[tuple[str, str]]:
        """Deployments an HPA owns: the autoscaler refuses to act on them."""
        items: list[Any] = self.autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces(
            _request_timeout=self.timeout
        ).items
        return {
            (h.metadata.namespace, h.spec.scale_target_ref.name)
            for h in items
            if h.spec.scale_target_ref.kind == "Deployment"
        }

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        try:
            found = self.core.read_namespaced_config_map(name, namespace, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found.data or {})

    # --- writes ------------------------------------------------------------------------------------------------

    def scale(self, namespace: str, deployment: str, replicas: int) -> bool:
        """Set a Deployment's replicas through its scale subresource; False when it already had them."""
        for attempt in range(CONFLICT_RETRIES):
            scale: Any = self.apps.read_namespaced_deployment_scale(
                deployment, namespace, _request_timeout=self.timeout
            )
            if scale.spec.replicas == replicas:
                return False
            scale.spec.replicas = replicas
            try:
                self.apps.replace_namespaced_deployment_scale(
                    deployment, namespace, scale, field_manager=FIELD_MANAGER, _request_timeout=self.timeout
                )
                return True
            except ApiException as error:
                if error.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise
        return False

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _request_timeout=self.timeout
        )

    def event(self, involved: Mapping[str, Any], kind: str, reason: str, message: str, now: float) -> None:
        """A Normal or Warning event on an object (apiVersion, kind, metadata), as `kubectl describe` shows it."""
        meta = involved["metadata"]
        when = _utc(now)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=involved["apiVersion"],
                kind=involved["kind"],
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
            ),
            type=kind,
            reason=reason,
            message=message[:1024],
            first_timestamp=when,
            last_timestamp=when,
            count=1,
            source=client.V1EventSource(component=FIELD_MANAGER),
        )
        self.core.create_namespaced_event(meta["namespace"], body, _request_timeout=self.timeout)

    # --- leader lease ------------------------------------------------------------------------------------------

    def lease(self, namespace: str, name: str) -> Any:
        """The Lease, or None when it does not exist yet."""
        try:
            return self.coordination.read_namespaced_lease(name, namespace, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, lease: client.V1Lease) -> client.V1Lease:
        return self.coordination.create_namespaced_lease(namespace, lease, _request_timeout=self.timeout)

    def replace_lease(self, namespace: str, lease: Any) -> client.V1Lease:
        """Optimistic: fails with 409 when another replica renewed it since we read it."""
        return self.coordination.replace_namespaced_lease(
            lease.metadata.name, namespace, lease, _request_timeout=self.timeout
        )


def _condition(pod: Any, kind: str) -> Any:
    conditions = pod.status.conditions if pod.status and pod.status.conditions else []
    return next((c for c in conditions if c.type == kind), None)


def _ready_after(pod: Any) -> float | None:
    """Seconds from a pod's creation to its Ready condition: how long a replica of its variant takes to start."""
    ready = _condition(pod, "Ready")
    created = pod.metadata.creation_timestamp
    if ready is None or ready.last_transition_time is None or created is None:
        return None
    return max(0.0, float((ready.last_transition_time - created).total_seconds()))


def _unschedulable(pod: Any) -> str | None:
    """The scheduler's message for a pod it cannot place (PodScheduled=False, reason Unschedulable)."""
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is None or scheduled.status != "False" or scheduled.reason != "Unschedulable":
        return None
    return str(scheduled.message or "Unschedulable")
