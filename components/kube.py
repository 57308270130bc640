"""Small Kubernetes helpers shared by the components: namespaces and Helm releases declared one way."""

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.pins import HelmChart

PART_OF = "llm-platform"
# Pod Security `restricted` for a container: the platform's own and the model servers' alike.
RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Skips of manifest checks (checkov) that every Deployment of the platform needs, with the reason on the object.
PINNED_BY_TAG = "CKV_K8S_43=images are pinned by tag in components/pins.py; digests are not resolvable offline"


def labels(component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The labels every object of the platform carries."""
    return {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component, **(extra or {})}


def namespace(
    resource_name: str, name: str, component: str, pod_security: str, opts: pulumi.ResourceOptions
) -> k8s.core.v1.Namespace:
    """A namespace whose Pod Security level is enforced, audited and warned at the same level."""
    psa = {f"pod-security.kubernetes.io/{mode}": pod_security for mode in ("enforce", "audit", "warn")}
    return k8s.core.v1.Namespace(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels(component, psa)),
        opts=opts,
    )


def helm_release(
    resource_name: str,
    chart: HelmChart,
    namespace: pulumi.Input[str],
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A pinned Helm release with its fixed name; helm.v3.Release runs the chart's hooks and installs its CRDs."""
    return k8s.helm.v3.Release(
        resource_name,
        k8s.helm.v3.ReleaseArgs(
            name=chart.release,
            chart=chart.chart,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
            namespace=namespace,
            values=values,
            cleanup_on_fail=True,
            timeout=900,
        ),
        opts=opts,
    )


def manifest(value: dict[str, Any] | list[Any]) -> Any:
    """A plain manifest dict (camelCase keys, as in the Kubernetes docs) passed where the SDK types its inputs.

    The SDK serializes such dicts unchanged; its TypedDicts would only restate the Kubernetes schema, which the
    render validates strictly instead.
    """
    return value


def network_policy(
    resource_name: str,
    namespace: pulumi.Input[str],
    name: str,
    spec: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata=manifest({"name": name, "namespace": namespace, "labels": labels("network-policy")}),
        spec=manifest(spec),
        opts=opts,
    )


def deny_all(resource_name: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> None:
    """Default deny in both directions: each flow a namespace needs is then allowed by name."""
    network_policy(
        resource_name, namespace, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, opts
    )


def deny_ingress(resource_name: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> None:
    """Default deny of ingress: each flow into the namespace is then allowed by name; its pods may reach out."""
    network_policy(
        resource_name, namespace, "default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}, opts
    )


def namespace_selector(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


# Every pod may resolve names through the cluster DNS.
DNS_EGRESS = {
    "to": [namespace_selector("kube-system")],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def restricted_pod(uid: int) -> dict[str, Any]:
    """Pod-level security context: a non-root high UID, its own group for volumes, the runtime's seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu: tuple[str, str], memory: tuple[str, str]) -> dict[str, Any]:
    """A container's resources from (request, limit) of CPU and of memory."""
    return {"requests": {"cpu": cpu[0], "memory": memory[0]}, "limits": {"cpu": cpu[1], "memory": memory[1]}}


def checkov_skips(*skips: str) -> dict[str, str]:
    """Annotations that skip named checks, each `CHECK_ID=reason`, so the reason stays with the object."""
    return {f"checkov.io/skip{i}": skip for i, skip in enumerate(skips, start=1)}
