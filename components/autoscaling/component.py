"""The bundled autoscaler: its CRD, least-privilege RBAC, thresholds, the controller Deployment, and one
VariantAutoscaling per model.

The code reaches the cluster with `pulumi up` alone: the package is shipped in a ConfigMap and its hash-pinned wheels
are installed by an init container into a pinned Python image, so no registry of ours is needed; `image` switches
to a prebuilt image (autoscaler/Dockerfile) for clusters that cannot reach PyPI.
"""

import hashlib
from pathlib import Path
from typing import Any, NamedTuple
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
from components.autoscaling.args import AutoscalerArgs, PrometheusAccess
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
SELECTOR = {"app.kubernetes.io/name": AUTOSCALER_APP}
# Voluntary disruptions take one replica at a time; another one takes over the lease.
PDB_SPEC = {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}


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
        ns = namespace(
            f"{name}-namespace", args.namespace, "autoscaler", "restricted", pulumi.ResourceOptions(parent=self)
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        meta = metadata(args.namespace)
        self.crd = k8s.apiextensions.v1.CustomResourceDefinition(
            f"{name}-crd", **_fields(custom_resource_definition()), opts=pulumi.ResourceOptions(parent=self)
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account", metadata=manifest({**meta, "name": AUTOSCALER_APP}), opts=in_ns
        )
        self._cluster_rbac(name, namespace=args.namespace, meta=meta, account=account)
        self._namespace_rbac(name, namespace=args.namespace, meta=meta, account=account, in_ns=in_ns)
        code = package_files()
        self._config_maps(name, args=args, code=code, meta=meta, in_ns=in_ns)
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=manifest({**meta, "name": AUTOSCALER_APP, "annotations": checkov_skips(PINNED_BY_TAG, API_TOKEN)}),
            spec=manifest(deployment_spec(args, prometheus_url, code)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, self.crd]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=manifest({**meta, "name": AUTOSCALER_APP}), spec=manifest(PDB_SPEC), opts=in_ns
        )
        self._variant_autoscalings(name, models)
        deny_all(f"{name}-deny-all", args.namespace, in_ns)
        policy = network_spec(args, prometheus_url, monitoring_namespace)
        network_policy(f"{name}-allow", args.namespace, AUTOSCALER_APP, policy, in_ns)
        self.register_outputs({"namespace": ns.metadata.name})

    def _cluster_rbac(
        self, name: str, *, namespace: str, meta: dict[str, Any], account: k8s.core.v1.ServiceAccount
    ) -> None:
        """Cluster-wide, because the models it scales live in any namespace: exactly CLUSTER_RULES."""
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-cluster-role",
            metadata=manifest({"name": AUTOSCALER_APP, "labels": meta["labels"]}),
            rules=manifest(CLUSTER_RULES),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-cluster-binding",
            metadata=manifest({"name": AUTOSCALER_APP, "labels": meta["labels"]}),
            **role_binding("ClusterRole", namespace),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_role, account]),
        )

    def _namespace_rbac(
        self,
        name: str,
        *,
        namespace: str,
        meta: dict[str, Any],
        account: k8s.core.v1.ServiceAccount,
        in_ns: pulumi.ResourceOptions,
    ) -> None:
        """In its own namespace only: its thresholds ConfigMap and its leader-election lease."""
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata=manifest({**meta, "name": AUTOSCALER_APP}),
            rules=manifest(NAMESPACE_RULES),
            opts=in_ns,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-binding",
            metadata=manifest({**meta, "name": AUTOSCALER_APP}),
            **role_binding("Role", namespace),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role, account]),
        )

    def _config_maps(
        self,
        name: str,
        *,
        args: AutoscalerArgs,
        code: dict[str, str],
        meta: dict[str, Any],
        in_ns: pulumi.ResourceOptions,
    ) -> None:
        """The thresholds the controller reads each pass and, without a prebuilt image, the code it runs."""
        k8s.core.v1.ConfigMap(
            f"{name}-thresholds",
            metadata=manifest({**meta, "name": THRESHOLDS_CONFIGMAP}),
            data=thresholds_configmap(args.thresholds, args.overrides),
            opts=in_ns,
        )
        if args.image is None:
            k8s.core.v1.ConfigMap(
                f"{name}-code", metadata=manifest({**meta, "name": CODE_CONFIG_MAP}), data=code, opts=in_ns
            )

    def _variant_autoscalings(self, name: str, models: list[ModelArgs]) -> None:
        """One VariantAutoscaling per model, in the model's namespace; the CRD must exist first."""
        for model in models:
            k8s.apiextensions.CustomResource(
                f"{name}-{model.name}",
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                metadata={"name": model.name, "namespace": model.namespace, "labels": labels("autoscaler")},
                spec=variant_autoscaling(model),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.crd]),
            )


def metadata(namespace: str) -> dict[str, Any]:
    """Namespace and labels every namespaced autoscaler object carries; each adds its own name."""
    return {"namespace": namespace, "labels": labels("autoscaler", SELECTOR)}


def role_binding(kind: str, namespace: str) -> dict[str, Any]:
    """A (Cluster)RoleBinding's role and subject, as SDK keyword arguments: the role of that kind to the account."""
    return {
        "role_ref": manifest({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": AUTOSCALER_APP}),
        "subjects": manifest([{"kind": "ServiceAccount", "name": AUTOSCALER_APP, "namespace": namespace}]),
    }


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
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": scrapers, "ports": [{"protocol": "TCP", "port": AUTOSCALER_METRICS_PORT}]}]
        if scrapers
        else [],
        "egress": egress,
    }


def _fields(document: dict[str, Any]) -> dict[str, Any]:
    """A manifest's top-level fields as SDK keyword arguments."""
    return {"metadata": manifest(document["metadata"]), "spec": manifest(document["spec"])}


class MountedFile(NamedTuple):
    """A credential the controller reads from a file: its volume, where the volume comes from, and the env var
    naming the file."""

    volume: str
    source: dict[str, Any]
    env_name: str
    file: str


def prometheus_files(access: PrometheusAccess) -> list[MountedFile]:
    """The CA, bearer token and basic-auth password for Prometheus, each only when its ConfigMap or Secret is named."""
    candidates = (
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
    )
    return [MountedFile(volume, source, env_name, file) for ref, volume, source, env_name, file in candidates if ref]


def container_env(args: AutoscalerArgs, *, prometheus_url: str, files: list[MountedFile]) -> list[dict[str, Any]]:
    """The controller's settings, where its Prometheus credentials are, and, without a prebuilt image, where the
    init container put its dependencies."""
    access = args.prometheus_access
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "PROMETHEUS_URL", "value": str(args.prometheus_url or prometheus_url)},
        {"name": "AUTOSCALER_MODE", "value": args.mode},
        {"name": "AUTOSCALER_INTERVAL_SECONDS", "value": str(args.interval_seconds)},
        {"name": "AUTOSCALER_DRY_RUN", "value": "true" if args.dry_run else "false"},
        {"name": "AUTOSCALER_LOG_FORMAT", "value": args.log_format},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *({"name": f.env_name, "value": f"/etc/{f.volume}/{f.file}"} for f in files),
    ]
    if access.basic_auth_secret:
        username = {"secretKeyRef": {"name": access.basic_auth_secret, "key": "username"}}
        env.append({"name": "PROMETHEUS_USERNAME", "valueFrom": username})
    if args.image is None:
        env.append({"name": "PYTHONPATH", "value": "/deps:/app"})
    return env


def health_probes() -> dict[str, Any]:
    """Both on /healthz; liveness tolerates twice the failures readiness does, so a pod is unready well before it is
    restarted."""
    probe = {"httpGet": {"path": "/healthz", "port": AUTOSCALER_METRICS_PORT_NAME}, "periodSeconds": 10}
    return {"livenessProbe": {**probe, "failureThreshold": 6}, "readinessProbe": probe}


def controller_container(args: AutoscalerArgs, *, prometheus_url: str, files: list[MountedFile]) -> dict[str, Any]:
    """The controller: the prebuilt image, or the pinned Python image running the shipped code."""
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        *({"name": f.volume, "mountPath": f"/etc/{f.volume}", "readOnly": True} for f in files),
    ]
    if args.image is None:
        mounts += [
            {"name": "code", "mountPath": "/app/autoscaler", "readOnly": True},
            {"name": "deps", "mountPath": "/deps", "readOnly": True},
        ]
    return {
        "name": "autoscaler",
        "image": args.image or PYTHON_IMAGE,
        "env": container_env(args, prometheus_url=prometheus_url, files=files),
        "ports": [{"name": AUTOSCALER_METRICS_PORT_NAME, "containerPort": AUTOSCALER_METRICS_PORT}],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        **health_probes(),
        "securityContext": RESTRICTED_CONTAINER,
        "imagePullPolicy": "Always",
        "volumeMounts": mounts,
        **({"command": ["python", "-m", "autoscaler"]} if args.image is None else {}),
    }


def install_container() -> dict[str, Any]:
    """Installs the shipped requirements into /deps: every wheel pinned and hash-checked, none resolved or built."""
    return {
        "name": "install",
        "image": PYTHON_IMAGE,
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


def pod_volumes(args: AutoscalerArgs, files: list[MountedFile]) -> list[dict[str, Any]]:
    """A small scratch /tmp, the credential files, and, without a prebuilt image, the code and its dependencies."""
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *({"name": f.volume, **f.source} for f in files)]
    if args.image is None:
        volumes += [
            {"name": "code", "configMap": {"name": CODE_CONFIG_MAP}},
            {"name": "deps", "emptyDir": {"sizeLimit": "256Mi"}},
        ]
    return volumes


def pod_spec(args: AutoscalerArgs, prometheus_url: str) -> dict[str, Any]:
    """Restricted, under the controller's service account; the init container only when there is no prebuilt image."""
    files = prometheus_files(args.prometheus_access)
    return {
        "serviceAccountName": AUTOSCALER_APP,
        "terminationGracePeriodSeconds": 30,
        "securityContext": restricted_pod(AUTOSCALER_UID),
        "containers": [controller_container(args, prometheus_url=prometheus_url, files=files)],
        "volumes": pod_volumes(args, files),
        **({"initContainers": [install_container()]} if args.image is None else {}),
    }


def code_digest(code: dict[str, str]) -> str:
    """A short hash of the shipped code: as a pod annotation, it rolls the pods when the code changes."""
    return hashlib.sha256("".join(f"{k}\0{v}" for k, v in sorted(code.items())).encode()).hexdigest()[:16]


def deployment_spec(args: AutoscalerArgs, prometheus_url: str, code: dict[str, str]) -> dict[str, Any]:
    """Two replicas, one leading; restricted security context; the code's hash rolls pods when it changes."""
    return {
        "replicas": args.replicas,
        "selector": {"matchLabels": SELECTOR},
        "template": {
            "metadata": {
                "labels": {**labels("autoscaler"), **SELECTOR},
                "annotations": {"llm-platform.io/code": code_digest(code)},
            },
            "spec": pod_spec(args, prometheus_url),
        },
    }
