"""The composition root: one explicit Kubernetes provider, then the components in dependency order."""

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.autoscaling.component import Autoscaler
from components.gpu_operator.component import GpuOperator
from components.model_serving.component import ModelNamespace, ModelServing
from components.model_storage.component import ModelStorage
from components.model_storage.volume import MODELS_CLAIM, WeightsVolume, weights_path
from components.monitoring.component import Monitoring, prometheus_url
from components.pins import KUBE_PROMETHEUS_STACK
from stack.config import StackConfig


@dataclass(frozen=True)
class VariantCost:
    """What one variant costs at its replica bounds: the numbers a reviewer checks before `pulumi up`."""

    model: str
    variant: str
    accelerator: str
    gpus_per_replica: int  # 0 for the simulator runtime, which requests no GPU
    usd_per_replica_hour: float
    min_replicas: int
    max_replicas: int


def variant_costs(config: StackConfig) -> list[VariantCost]:
    return [
        VariantCost(
            model=m.name,
            variant=v.name,
            accelerator=v.accelerator_type,
            gpus_per_replica=v.gpus_per_replica if v.uses_gpus else 0,
            usd_per_replica_hour=v.cost,
            min_replicas=v.min_replicas,
            max_replicas=v.max_replicas,
        )
        for m in config.models
        for v in m.variants
    ]


class Platform:
    """Builds every enabled part of the platform from a validated config."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        target = config.kubernetes
        self.provider = k8s.Provider("kubernetes", kubeconfig=target.kubeconfig, context=target.context)
        on_cluster = pulumi.ResourceOptions(provider=self.provider)
        # First: its release installs the monitoring CRDs that the GPU Operator's ServiceMonitor needs.
        self.monitoring = monitoring(config, on_cluster)
        self.gpu_operator = gpu_operator(
            config, after(on_cluster, [self.monitoring.release] if self.monitoring else [])
        )
        # Shared by the models that name them and by the storage claim the models mount.
        self.model_namespaces = {
            ns: ModelNamespace(f"models-{ns}", ns, on_cluster) for ns in sorted({m.namespace for m in config.models})
        }
        self.model_storage = model_storage(config, self.model_namespaces, on_cluster)
        # Model servers mount the weights claim once it exists; without storage they fetch weights by model id.
        self.model_servers = model_servers(
            config,
            self.model_namespaces,
            with_storage=self.model_storage is not None,
            opts=after(on_cluster, self.model_storage.serving_dependencies if self.model_storage else []),
        )
        self.autoscaler = autoscaler(config, on_cluster)

    def outputs(self) -> dict[str, object]:
        """Stack outputs: where things are, and what the variants cost at their bounds."""
        outputs: dict[str, object] = {
            "variants": [
                {
                    "model": c.model,
                    "variant": c.variant,
                    "accelerator": c.accelerator,
                    "gpusPerReplica": c.gpus_per_replica,
                    "usdPerReplicaHour": c.usd_per_replica_hour,
                    "minReplicas": c.min_replicas,
                    "maxReplicas": c.max_replicas,
                }
                for c in variant_costs(self.config)
            ]
        }
        if self.gpu_operator is not None:
            outputs["gpuOperatorNamespace"] = self.gpu_operator.namespace.metadata.name
        if self.monitoring is not None:
            outputs.update(self.monitoring.outputs())
        return outputs


def after(opts: pulumi.ResourceOptions, depends_on: list[pulumi.Resource]) -> pulumi.ResourceOptions:
    """`opts`, also waiting for `depends_on`; `opts` itself is left as it was."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=depends_on))


def monitoring(config: StackConfig, opts: pulumi.ResourceOptions) -> Monitoring | None:
    """The monitoring stack; its network policy lets the autoscaler's namespace query Prometheus when it is on."""
    if not config.monitoring.enabled:
        return None
    querying = [config.autoscaler.namespace] if config.autoscaler.enabled else []
    return Monitoring("monitoring", config.monitoring, config.models, querying, opts)


def gpu_operator(config: StackConfig, opts: pulumi.ResourceOptions) -> GpuOperator | None:
    """The GPU Operator; its ServiceMonitor is selected by kube-prometheus-stack only with the `release` label."""
    if not config.gpu_operator.enabled:
        return None
    monitor_labels = {"release": KUBE_PROMETHEUS_STACK.release} if config.monitoring.enabled else None
    return GpuOperator("gpu-operator", config.gpu_operator, monitor_labels, opts)


def model_storage(
    config: StackConfig, namespaces: dict[str, ModelNamespace], opts: pulumi.ResourceOptions
) -> ModelStorage | None:
    """JuiceFS with one weights claim per model namespace, and the loader that fills it."""
    if not config.model_storage.enabled:
        return None
    return ModelStorage(
        "model-storage", config.model_storage, config.models, {ns: m.name for ns, m in namespaces.items()}, opts
    )


def model_servers(
    config: StackConfig,
    namespaces: dict[str, ModelNamespace],
    *,
    with_storage: bool,
    opts: pulumi.ResourceOptions,
) -> list[ModelServing]:
    """One ModelServing per model; replicas are the autoscaler's to set when it is on."""
    return [
        ModelServing(
            f"model-{m.name}",
            m,
            namespaces[m.namespace].name,
            WeightsVolume(MODELS_CLAIM, weights_path(m.model_id)) if with_storage else None,
            autoscaled=config.autoscaler.enabled,
            opts=opts,
        )
        for m in config.models
    ]


def autoscaler(config: StackConfig, opts: pulumi.ResourceOptions) -> Autoscaler | None:
    """The autoscaler, reading its own Prometheus URL or else the platform's."""
    if not config.autoscaler.enabled:
        return None
    return Autoscaler(
        "autoscaler",
        config.autoscaler,
        config.models,
        str(config.autoscaler.prometheus_url or prometheus_url(config.monitoring.namespace)),
        config.monitoring.namespace if config.monitoring.enabled else None,
        opts,
    )
