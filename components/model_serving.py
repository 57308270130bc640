"""Model serving: llm-d style model servers, one Deployment per GPU variant, one endpoint per model."""

from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
from pydantic import Field, ValidationInfo, field_validator, model_validator

from autoscaler.accelerators import ACCELERATORS, batch_defaults
from autoscaler.api import (
    DEFAULT_GPUS_PER_REPLICA,
    DEFAULT_HEADROOM,
    DEFAULT_MAX_REPLICAS,
    MODEL_LABEL,
    SERVING_LABEL,
    SERVING_PORT,
    SERVING_PORT_NAME,
    ReplicaProfile,
    Slo,
    serving_labels,
)
from components.args import ArgsModel, DnsLabel, PinnedImage, Quantity, duplicates, problems
from components.inference_pool import (
    EPP_GRPC_PORT,
    EPP_METRICS_PORT,
    PLUGINS,
    PLUGINS_FILE,
    POOL_API,
    picker_annotations,
    picker_deployment_spec,
    picker_name,
    picker_rules,
    pool_spec,
)
from components.kube import labels, manifest, namespace, network_policy
from components.model_server_pod import WeightsVolume, deployment_annotations, deployment_spec, pod_labels
from components.pins import ENDPOINT_PICKER_IMAGE

Runtime = Literal["vllm", "tgi", "simulator"]
GPU_RUNTIMES = ("vllm", "tgi")


class VariantArgs(ArgsModel):
    """One way to serve a model: an accelerator type, GPUs per replica, a price and a replica range.

    Fields are checked in order, so each check below sees the fields declared before it.
    """

    name: DnsLabel
    runtime: Runtime = "vllm"
    image: PinnedImage | None = None
    # Required for an accelerator type the platform does not know; overrides the product affinity otherwise.
    node_selector: dict[str, str] | None = None
    accelerator_type: str = Field(min_length=1)
    gpus_per_replica: int = Field(DEFAULT_GPUS_PER_REPLICA, ge=1, le=16)
    cost: float = Field(gt=0, description="USD per replica-hour")
    max_replicas: int = Field(DEFAULT_MAX_REPLICAS, ge=1)
    min_replicas: int = Field(0, ge=0)
    # Per replica; the defaults follow the runtime and the GPU count.
    cpu: Quantity | None = None
    memory: Quantity | None = None
    # vLLM's per-step token budget (chunked prefill); default vLLM's own for the accelerator's memory.
    max_num_batched_tokens: int | None = Field(None, ge=1)
    # The autoscaler's priors for this variant until it has measured its own (see autoscaler.api.Variant).
    cold_start_seconds: float | None = Field(None, gt=0)
    profile: ReplicaProfile | None = None

    @property
    def uses_gpus(self) -> bool:
        return self.runtime in GPU_RUNTIMES

    @field_validator("accelerator_type")
    @classmethod
    def _known_or_selected(cls, accelerator: str, info: ValidationInfo) -> str:
        if accelerator not in ACCELERATORS and not info.data.get("node_selector"):
            raise ValueError(f"unknown type; use one of {', '.join(ACCELERATORS)}, or give the variant a nodeSelector")
        return accelerator

    @field_validator("gpus_per_replica")
    @classmethod
    def _splits_for_tensor_parallelism(cls, gpus: int, info: ValidationInfo) -> int:
        if info.data.get("runtime") in GPU_RUNTIMES and gpus & (gpus - 1):
            raise ValueError("must be a power of two: the tensor parallel size has to divide the model")
        return gpus

    @field_validator("max_num_batched_tokens")
    @classmethod
    def _room_for_every_running_request(cls, budget: int | None, info: ValidationInfo) -> int | None:
        seqs = batch_defaults(info.data.get("accelerator_type") or "")[1]
        if budget is not None and budget < seqs:
            raise ValueError(f"must be >= maxNumSeqs ({seqs}): vLLM refuses a budget below its running requests")
        return budget

    @property
    def batch(self) -> tuple[int, int]:
        """(max_num_batched_tokens, max_num_seqs) the server runs with: what the simulator assumes too."""
        budget, seqs = batch_defaults(self.accelerator_type)
        return self.max_num_batched_tokens or budget, seqs

    @field_validator("min_replicas")
    @classmethod
    def _not_above_max(cls, minimum: int, info: ValidationInfo) -> int:
        maximum = info.data.get("max_replicas")
        if maximum is not None and minimum > maximum:
            raise ValueError(f"must be <= maxReplicas ({maximum})")
        return minimum


class GatewayRef(ArgsModel):
    name: str = Field(min_length=1)
    namespace: DnsLabel | None = None


class EndpointArgs(ArgsModel):
    """How clients outside the cluster reach a model; inside, its Service always answers on the model's name."""

    route: Literal["none", "ingress", "httproute"] = "none"
    host: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    tls_secret_name: DnsLabel | None = None
    ingress_class_name: str | None = None
    gateway: GatewayRef | None = None
    # Load-aware routing: an InferencePool with its endpoint picker (the HTTPRoute then targets the pool).
    inference_pool: bool = False

    @model_validator(mode="after")
    def _route_has_what_it_needs(self) -> "EndpointArgs":
        found = []
        if self.route != "none" and self.host is None:
            found.append(("host", f"required when route is {self.route}"))
        if self.route == "httproute" and self.gateway is None:
            found.append(("gateway", "required when route is httproute (the Gateway that terminates TLS)"))
        if self.route != "ingress" and (self.tls_secret_name or self.ingress_class_name):
            found.append(("route", "tlsSecretName and ingressClassName apply to route: ingress only"))
        if found:
            raise problems(found)
        return self


class ModelArgs(ArgsModel):
    name: DnsLabel
    model_id: str = Field(alias="modelID", min_length=1)
    namespace: DnsLabel = "llm"
    variants: list[VariantArgs] = Field(min_length=1)
    # The latency the model's traffic must be served within: the autoscaler, alerts and the benchmark use it.
    slo: Slo = Slo()
    # Spare capacity the autoscaler holds over the measured demand (0.1: 10%); more absorbs bursts shorter than a
    # cold start, at its cost (docs/benchmark.md shows the trade-off).
    headroom: float = Field(DEFAULT_HEADROOM, ge=0, le=4)
    max_model_len: int | None = Field(None, ge=128)
    gpu_memory_utilization: float = Field(0.95, gt=0, le=1)
    # Passed to every variant's server after the platform's own arguments.
    extra_args: list[str] = Field(default_factory=list)
    endpoint: EndpointArgs = EndpointArgs()

    @model_validator(mode="after")
    def _unique_variant_names(self) -> "ModelArgs":
        found = duplicates([v.name for v in self.variants], "variants")
        if found:
            raise problems(found)
        return self


class ModelNamespace(pulumi.ComponentResource):
    """A namespace model servers run in, shared by the models that name it and by their storage claim.

    Pod Security `restricted`: model servers run as a non-root UID with a read-only root filesystem.
    Network: nothing reaches its pods but the model servers' API and metrics port (clients, gateways, Prometheus);
    model servers may reach out (DNS, and the model hub when they load weights by id).
    """

    def __init__(self, name: str, namespace_name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-platform:model_serving:ModelNamespace", name, None, opts)
        self.namespace = namespace(
            f"{name}-namespace", namespace_name, "model-serving", "restricted", pulumi.ResourceOptions(parent=self)
        )
        self.name = self.namespace.metadata.name
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        network_policy(
            f"{name}-deny-ingress",
            self.name,
            "default-deny-ingress",
            {"podSelector": {}, "policyTypes": ["Ingress"]},
            in_ns,
        )
        network_policy(
            f"{name}-allow-serving",
            self.name,
            "allow-model-servers",
            {
                "podSelector": {"matchLabels": {SERVING_LABEL: "true"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": SERVING_PORT}]}],
            },
            in_ns,
        )
        self.register_outputs({"name": self.name})


class ModelServing(pulumi.ComponentResource):
    """One model: a Deployment and a PodDisruptionBudget per variant, one Service across all of them, and
    optionally an Ingress or HTTPRoute. With the autoscaler on, replicas after creation are its to set."""

    def __init__(
        self,
        name: str,
        model: ModelArgs,
        namespace: pulumi.Input[str],
        weights: WeightsVolume | None,
        autoscaled: bool,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-platform:model_serving:ModelServing", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        replicas_owned = pulumi.ResourceOptions(parent=self, ignore_changes=["spec.replicas"] if autoscaled else None)
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        for variant in model.variants:
            meta = {"name": variant.name, "namespace": namespace, "labels": pod_labels(model, variant)}
            self.deployments[variant.name] = k8s.apps.v1.Deployment(
                f"{name}-{variant.name}",
                metadata=manifest({**meta, "annotations": deployment_annotations(variant)}),
                spec=manifest(deployment_spec(model, variant, weights)),
                opts=replicas_owned,
            )
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-{variant.name}-pdb",
                metadata=manifest(meta),
                spec=manifest(
                    {"maxUnavailable": 1, "selector": {"matchLabels": serving_labels(model.name, variant.name)}}
                ),
                opts=child,
            )
        endpoint_labels = {SERVING_LABEL: "true", MODEL_LABEL: model.name}
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=manifest(self._meta(model, namespace)),
            spec=manifest(
                {
                    "selector": endpoint_labels,
                    "ports": [{"name": SERVING_PORT_NAME, "port": SERVING_PORT, "targetPort": SERVING_PORT_NAME}],
                }
            ),
            opts=child,
        )
        if model.endpoint.inference_pool:
            self._inference_pool(name, model, namespace)
        route = model.endpoint
        if route.route == "ingress":
            k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=manifest(self._meta(model, namespace)),
                spec=manifest(ingress_spec(model)),
                opts=child,
            )
        elif route.route == "httproute":
            k8s.apiextensions.CustomResource(
                f"{name}-httproute",
                api_version="gateway.networking.k8s.io/v1",
                kind="HTTPRoute",
                metadata=self._meta(model, namespace),
                spec=http_route_spec(model),
                opts=child,
            )
        self.register_outputs({"service": self.service.metadata.name})

    def _inference_pool(self, name: str, model: ModelArgs, namespace: pulumi.Input[str]) -> None:
        picker = picker_name(model.name)
        meta = {"name": picker, "namespace": namespace, "labels": labels("endpoint-picker")}
        child = pulumi.ResourceOptions(parent=self)
        account = k8s.core.v1.ServiceAccount(f"{name}-epp-account", metadata=manifest(meta), opts=child)
        role = k8s.rbac.v1.Role(f"{name}-epp-role", metadata=manifest(meta), rules=manifest(picker_rules()), opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{name}-epp-binding",
            metadata=manifest(meta),
            role_ref=manifest({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": picker}),
            subjects=manifest([{"kind": "ServiceAccount", "name": picker, "namespace": namespace}]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, role]),
        )
        k8s.core.v1.ConfigMap(f"{name}-epp-config", metadata=manifest(meta), data={PLUGINS_FILE: PLUGINS}, opts=child)
        k8s.apps.v1.Deployment(
            f"{name}-epp",
            metadata=manifest({**meta, "annotations": picker_annotations()}),
            spec=manifest(picker_deployment_spec(model.name, ENDPOINT_PICKER_IMAGE)),
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-epp-service",
            metadata=manifest(meta),
            spec=manifest(
                {
                    "selector": {"app.kubernetes.io/name": picker},
                    "ports": [
                        {"name": "grpc", "port": EPP_GRPC_PORT, "targetPort": EPP_GRPC_PORT, "appProtocol": "http2"}
                    ],
                }
            ),
            opts=child,
        )
        network_policy(
            f"{name}-epp-allow",
            namespace,
            picker,
            {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": picker}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"ports": [{"protocol": "TCP", "port": EPP_GRPC_PORT}]},
                    {"ports": [{"protocol": "TCP", "port": EPP_METRICS_PORT}]},  # Prometheus: the queue size
                ],
            },
            child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-pool",
            api_version=POOL_API,
            kind="InferencePool",
            metadata=self._meta(model, namespace),
            spec=pool_spec(model.name),
            opts=child,
        )

    @staticmethod
    def _meta(model: ModelArgs, namespace: pulumi.Input[str]) -> dict[str, Any]:
        return {"name": model.name, "namespace": namespace, "labels": labels("model-server")}


def ingress_spec(model: ModelArgs) -> dict[str, Any]:
    endpoint = model.endpoint
    backend = {"service": {"name": model.name, "port": {"name": SERVING_PORT_NAME}}}
    spec: dict[str, Any] = {
        "rules": [{"host": endpoint.host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]
    }
    if endpoint.ingress_class_name:
        spec["ingressClassName"] = endpoint.ingress_class_name
    if endpoint.tls_secret_name:
        spec["tls"] = [{"hosts": [endpoint.host], "secretName": endpoint.tls_secret_name}]
    return spec


def http_route_spec(model: ModelArgs) -> dict[str, Any]:
    gateway = model.endpoint.gateway
    assert gateway is not None  # checked by EndpointArgs
    parent = {"name": gateway.name, **({"namespace": gateway.namespace} if gateway.namespace else {})}
    pool = {"group": POOL_API.split("/")[0], "kind": "InferencePool", "name": model.name}
    backend = pool if model.endpoint.inference_pool else {"name": model.name, "port": SERVING_PORT}
    return {
        "parentRefs": [parent],
        "hostnames": [model.endpoint.host],
        "rules": [{"backendRefs": [backend]}],
    }
