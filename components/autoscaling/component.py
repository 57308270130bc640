"""The bundled autoscaler: its CRD, least-privilege RBAC, thresholds, the controller Deployment, and one
VariantAutoscaling per model.

The code reaches the cluster with `pulumi up` alone: the package is shipped in a ConfigMap and its hash-pinned wheels
are installed by an init container into a pinned Python image, so no registry of ours is needed; `image` switches
to a prebuilt image (autoscaler/Dockerfile) for clusters that cannot reach PyPI.
"""

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s

import autoscaler
from autoscaler.api import (
    AUTOSCALER_APP,
    AUTOSCALER_METRICS_PORT,
    AUTOSCALER_METRICS_PORT_NAME,
    GROUP,
    KIND,
    LEASE_NAME,
    PLURAL,
    THRESHOLDS_CONFIGMAP,
    VERSION,
    spec_from_stack_model,
    thresholds_configmap,
)
from autoscaler.crd import custom_resource_definition
from components.autoscaling.args import AutoscalerArgs
from components.kube import (
    DNS_EGRESS,
    PINNED_BY_TAG,
    RESTRICTED_CONTAINER,
    checkov_skips,
    deny_all,
    labels,
    manifest,
    namespace,
    namespace_selector,
    network_policy,
    restricted_pod,
)
from components.model_serving.args import ModelArgs
from components.pins import PYTHON_IMAGE

PACKAGE = Path(autoscaler.__file__).parent
# Modules `python -m autoscaler` never imports (the Pulumi program's CRD, the controller benchmark): kept out of the
# ConfigMap, and out of the image by .dockerignore.
NOT_SHIPPED = ("bench.py", "crd.py")
AUTOSCALER_UID = 65532
CODE_CONFIG_MAP = f"{AUTOSCALER_APP}-code"
API_TOKEN = "CKV_K8S_38=the autoscaler calls the Kubernetes API with its service account token"


# Exactly the calls autoscaler/kube.py makes; tests assert there is no wildcard.
CLUSTER_RULES = [
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["list"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["list"]},
]
NAMESPACE_RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [THRESHOLDS_CONFIGMAP], "verbs": ["get"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [LEASE_NAME],
        "verbs": ["get", "update"],
    },
]


def package_files() -> dict[str, str]:
    """The controller's runtime modules and requirements, as ConfigMap keys: no simulator, benchmark or build file."""
    files = {p.name: p.read_text() for p in sorted(PACKAGE.glob("*.py")) if p.name not in NOT_SHIPPED}
    files["requirements.txt"] = (PACKAGE / "requirements.txt").read_text()
    return files


def variant_autoscaling(model: ModelArgs) -> dict[str, Any]:
    spec = spec_from_stack_model(model.model_dump(by_alias=True))
    return spec.model_dump(by_alias=True, exclude_none=True)


class Autoscaler(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        args: AutoscalerArgs,
        models: list[ModelArgs],
        prometheus_url: str,
        monitoring_namespace: str | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-platform:autoscaler:Autoscaler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = namespace(f"{name}-namespace", args.namespace, "autoscaler", "restricted", child)
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        meta = {"namespace": args.namespace, "labels": labels("autoscaler", {"app.kubernetes.io/name": AUTOSCALER_APP})}

        self.crd = k8s.apiextensions.v1.CustomResourceDefinition(
            f"{name}-crd", **_fields(custom_resource_definition()), opts=child
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account", metadata=manifest({**meta, "name": AUTOSCALER_APP}), opts=in_ns
        )
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-cluster-role",
            metadata=manifest({"name": AUTOSCALER_APP, "labels": meta["labels"]}),
            rules=manifest(CLUSTER_RULES),
            opts=child,
        )
        subject = [{"kind": "ServiceAccount", "name": AUTOSCALER_APP, "namespace": args.namespace}]
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-cluster-binding",
            metadata=manifest({"name": AUTOSCALER_APP, "labels": meta["labels"]}),
            role_ref=manifest({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AUTOSCALER_APP}),
            subjects=manifest(subject),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_role, account]),
        )
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata=manifest({**meta, "name": AUTOSCALER_APP}),
            rules=manifest(NAMESPACE_RULES),
            opts=in_ns,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-binding",
            metadata=manifest({**meta, "name": AUTOSCALER_APP}),
            role_ref=manifest({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AUTOSCALER_APP}),
            subjects=manifest(subject),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role, account]),
        )
        k8s.core.v1.ConfigMap(
            f"{name}-thresholds",
            metadata=manifest({**meta, "name": THRESHOLDS_CONFIGMAP}),
            data=thresholds_configmap(args.thresholds, args.overrides),
            opts=in_ns,
        )
        code = package_files()
        if args.image is None:
            k8s.core.v1.ConfigMap(
                f"{name}-code", metadata=manifest({**meta, "name": CODE_CONFIG_MAP}), data=code, opts=in_ns
            )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=manifest({**meta, "name": AUTOSCALER_APP, "annotations": checkov_skips(PINNED_BY_TAG, API_TOKEN)}),
            spec=manifest(deployment_spec(args, prometheus_url, code)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, self.crd]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=manifest({**meta, "name": AUTOSCALER_APP}),
            spec=manifest(
                {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": AUTOSCALER_APP}}}
            ),
            opts=in_ns,
        )
        for model in models:
            k8s.apiextensions.CustomResource(
                f"{name}-{model.name}",
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                metadata={"name": model.name, "namespace": model.namespace, "labels": labels("autoscaler")},
                spec=variant_autoscaling(model),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.crd]),
            )
        deny_all(f"{name}-deny-all", args.namespace, in_ns)
        network_policy(
            f"{name}-allow",
            args.namespace,
            AUTOSCALER_APP,
            network_spec(args, prometheus_url, monitoring_namespace),
            in_ns,
        )
        self.register_outputs({"namespace": ns.metadata.name})


def network_spec(args: AutoscalerArgs, prometheus_url: str, monitoring_namespace: str | None) -> dict[str, Any]:
    """Scraped by the platform's Prometheus; talks to DNS, the API server, Prometheus and, without a prebuilt image,
    PyPI (the init container's wheels)."""
    url = urlparse(str(args.prometheus_url or prometheus_url))
    prometheus_port = url.port or (443 if url.scheme == "https" else 80)
    scrapers = [namespace_selector(monitoring_namespace)] if monitoring_namespace else []
    api_server = [{"ipBlock": {"cidr": str(cidr)}} for cidr in args.api_server_cidrs]
    egress = [
        DNS_EGRESS,
        # Managed control planes listen on 443, kubeadm's on 6443; neither is behind a pod or namespace selector.
        {
            **({"to": api_server} if api_server else {}),
            "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
        },
        {"ports": [{"protocol": "TCP", "port": prometheus_port}]},
    ]
    if args.image is None:
        egress.append({"ports": [{"protocol": "TCP", "port": 443}]})  # pypi.org and its CDN: no fixed addresses
    return {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": AUTOSCALER_APP}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": scrapers, "ports": [{"protocol": "TCP", "port": AUTOSCALER_METRICS_PORT}]}]
        if scrapers
        else [],
        "egress": egress,
    }


def _fields(document: dict[str, Any]) -> dict[str, Any]:
    """A manifest's top-level fields as SDK keyword arguments."""
    return {"metadata": manifest(document["metadata"]), "spec": manifest(document["spec"])}


def deployment_spec(args: AutoscalerArgs, prometheus_url: str, code: dict[str, str]) -> dict[str, Any]:
    """Two replicas, one leading; restricted security context; the code's hash rolls pods when it changes."""
    selector = {"app.kubernetes.io/name": AUTOSCALER_APP}
    digest = hashlib.sha256("".join(f"{k}\0{v}" for k, v in sorted(code.items())).encode()).hexdigest()[:16]
    access = args.prometheus_access
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "PROMETHEUS_URL", "value": str(args.prometheus_url or prometheus_url)},
        {"name": "AUTOSCALER_MODE", "value": args.mode},
        {"name": "AUTOSCALER_INTERVAL_SECONDS", "value": str(args.interval_seconds)},
        {"name": "AUTOSCALER_DRY_RUN", "value": "true" if args.dry_run else "false"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    for ref, volume, source, env_name, path in (
        (
            access.ca_config_map,
            "prometheus-ca",
            {"configMap": {"name": access.ca_config_map}},
            "PROMETHEUS_CA_FILE",
            "ca.crt",
        ),
        (
            access.token_secret,
            "prometheus-token",
            {"secret": {"secretName": access.token_secret}},
            "PROMETHEUS_TOKEN_FILE",
            "token",
        ),
        (
            access.basic_auth_secret,
            "prometheus-basic",
            {"secret": {"secretName": access.basic_auth_secret}},
            "PROMETHEUS_PASSWORD_FILE",
            "password",
        ),
    ):
        if ref:
            volumes.append({"name": volume, **source})
            mounts.append({"name": volume, "mountPath": f"/etc/{volume}", "readOnly": True})
            env.append({"name": env_name, "value": f"/etc/{volume}/{path}"})
    if access.basic_auth_secret:
        username = {"secretKeyRef": {"name": access.basic_auth_secret, "key": "username"}}
        env.append({"name": "PROMETHEUS_USERNAME", "valueFrom": username})
    probe = {"httpGet": {"path": "/healthz", "port": AUTOSCALER_METRICS_PORT_NAME}, "periodSeconds": 10}
    container: dict[str, Any] = {
        "name": "autoscaler",
        "image": args.image or PYTHON_IMAGE,
        "env": env,
        "ports": [{"name": AUTOSCALER_METRICS_PORT_NAME, "containerPort": AUTOSCALER_METRICS_PORT}],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "livenessProbe": {**probe, "failureThreshold": 6},
        "readinessProbe": probe,
        "securityContext": RESTRICTED_CONTAINER,
        "imagePullPolicy": "Always",
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {
        "serviceAccountName": AUTOSCALER_APP,
        "terminationGracePeriodSeconds": 30,
        "securityContext": restricted_pod(AUTOSCALER_UID),
        "containers": [container],
        "volumes": volumes,
    }
    if args.image is None:
        container["command"] = ["python", "-m", "autoscaler"]
        container["env"].append({"name": "PYTHONPATH", "value": "/deps:/app"})
        container["volumeMounts"] += [
            {"name": "code", "mountPath": "/app/autoscaler", "readOnly": True},
            {"name": "deps", "mountPath": "/deps", "readOnly": True},
        ]
        pod["initContainers"] = [
            {
                "name": "install",
                "image": PYTHON_IMAGE,
                # Every wheel pinned and hash-checked, none resolved or built here.
                "command": [
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--require-hashes",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--target",
                    "/deps",
                    "-r",
                    "/app/autoscaler/requirements.txt",
                ],
                "env": [{"name": "HOME", "value": "/tmp"}, {"name": "PIP_DISABLE_PIP_VERSION_CHECK", "value": "1"}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "securityContext": RESTRICTED_CONTAINER,
                "imagePullPolicy": "Always",
                "volumeMounts": [
                    {"name": "code", "mountPath": "/app/autoscaler", "readOnly": True},
                    {"name": "deps", "mountPath": "/deps"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ]
        pod["volumes"] += [
            {"name": "code", "configMap": {"name": CODE_CONFIG_MAP}},
            {"name": "deps", "emptyDir": {"sizeLimit": "256Mi"}},
        ]
    return {
        "replicas": args.replicas,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": {**labels("autoscaler"), **selector},
                "annotations": {"llm-platform.io/code": digest},
            },
            "spec": pod,
        },
    }
