"""Model serving: llm-d style model servers, one Deployment per GPU variant, one endpoint per model."""

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from autoscaler.api import MODEL_LABEL, SERVING_LABEL, SERVING_PORT, SERVING_PORT_NAME, serving_labels
from components.kube import deny_ingress, labels, manifest, namespace, network_policy
from components.model_serving.args import ModelArgs, VariantArgs
from components.model_serving.inference_pool import (
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
from components.model_serving.pod import deployment_annotations, deployment_spec, pod_labels
from components.model_serving.routes import http_route_spec, ingress_spec
from components.model_storage.volume import WeightsVolume
from components.pins import ENDPOINT_PICKER_IMAGE


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
        deny_ingress(f"{name}-deny-ingress", self.name, in_ns)
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


def service_spec(model: str) -> dict[str, Any]:
    """One Service across every variant of the model: clients see one endpoint, whichever variants run."""
    return {
        "selector": {SERVING_LABEL: "true", MODEL_LABEL: model},
        "ports": [{"name": SERVING_PORT_NAME, "port": SERVING_PORT, "targetPort": SERVING_PORT_NAME}],
    }


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
        replicas_owned = pulumi.ResourceOptions(parent=self, ignore_changes=["spec.replicas"] if autoscaled else None)
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        for variant in model.variants:
            self.deployments[variant.name] = self._variant(
                name, model=model, variant=variant, namespace=namespace, weights=weights, deployment_opts=replicas_owned
            )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=manifest(self._meta(model, namespace)),
            spec=manifest(service_spec(model.name)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if model.endpoint.inference_pool:
            self._inference_pool(name, model, namespace)
        self._route(name, model, namespace)
        self.register_outputs({"service": self.service.metadata.name})

    def _variant(
        self,
        name: str,
        *,
        model: ModelArgs,
        variant: VariantArgs,
        namespace: pulumi.Input[str],
        weights: WeightsVolume | None,
        deployment_opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        """A variant's Deployment, and a PodDisruptionBudget: voluntary disruptions take one replica at a time."""
        meta = {"name": variant.name, "namespace": namespace, "labels": pod_labels(model, variant)}
        deployment = k8s.apps.v1.Deployment(
            f"{name}-{variant.name}",
            metadata=manifest({**meta, "annotations": deployment_annotations(variant)}),
            spec=manifest(deployment_spec(model, variant, weights)),
            opts=deployment_opts,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-{variant.name}-pdb",
            metadata=manifest(meta),
            spec=manifest({"maxUnavailable": 1, "selector": {"matchLabels": serving_labels(model.name, variant.name)}}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return deployment

    def _route(self, name: str, model: ModelArgs, namespace: pulumi.Input[str]) -> None:
        """The model's way in from outside the cluster, if its endpoint asks for one: an Ingress or an HTTPRoute."""
        child = pulumi.ResourceOptions(parent=self)
        if model.endpoint.route == "ingress":
            k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=manifest(self._meta(model, namespace)),
                spec=manifest(ingress_spec(model)),
                opts=child,
            )
        elif model.endpoint.route == "httproute":
            k8s.apiextensions.CustomResource(
                f"{name}-httproute",
                api_version="gateway.networking.k8s.io/v1",
                kind="HTTPRoute",
                metadata=self._meta(model, namespace),
                spec=http_route_spec(model),
                opts=child,
            )

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
