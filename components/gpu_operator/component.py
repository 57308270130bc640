"""The NVIDIA GPU Operator: drivers, container toolkit, device plugin, GPU Feature Discovery and DCGM exporter."""

from typing import Any

import pulumi

from components.args import GPU_TOLERATION
from components.gpu_operator.args import GpuOperatorArgs
from components.kube import helm_release, namespace
from components.pins import GPU_OPERATOR

TIME_SLICING_CONFIG = "time-slicing"
RUNTIME_DEFAULT_SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}


def gpu_operator_values(args: GpuOperatorArgs, monitor_labels: dict[str, str] | None) -> dict[str, Any]:
    """Chart values; `monitor_labels` None means no Prometheus Operator is installed, so no ServiceMonitor."""
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in (GPU_TOLERATION, *args.tolerations)]
    values: dict[str, Any] = {
        "driver": {"enabled": args.driver == "operator"},
        "toolkit": {"enabled": args.toolkit},
        "mig": {"strategy": args.mig_strategy},
        "daemonsets": {"tolerations": tolerations},
        # Node Feature Discovery's pods under the runtime's seccomp profile (the subchart sets none).
        "node-feature-discovery": {
            "worker": {
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                    *tolerations,
                ],
                "podSecurityContext": RUNTIME_DEFAULT_SECCOMP,
            },
            "master": {"podSecurityContext": RUNTIME_DEFAULT_SECCOMP},
            "gc": {"podSecurityContext": RUNTIME_DEFAULT_SECCOMP},
        },
        "dcgmExporter": {
            "serviceMonitor": {
                "enabled": monitor_labels is not None,
                "interval": args.dcgm_scrape_interval,
                "additionalLabels": monitor_labels or {},
                "honorLabels": False,
            }
        },
    }
    if args.time_slicing is not None:
        sharing = (
            "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
            f"      - name: nvidia.com/gpu\n        replicas: {args.time_slicing.replicas}\n"
        )
        values["devicePlugin"] = {
            "config": {"create": True, "name": TIME_SLICING_CONFIG, "default": "any", "data": {"any": sharing}}
        }
    return values


class GpuOperator(pulumi.ComponentResource):
    """Namespace (privileged: the operator's pods load kernel modules) and the pinned gpu-operator release."""

    def __init__(
        self,
        name: str,
        args: GpuOperatorArgs,
        monitor_labels: dict[str, str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-platform:gpu_operator:GpuOperator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = namespace(f"{name}-namespace", args.namespace, "gpu-operator", "privileged", child)
        self.release = helm_release(
            f"{name}-release",
            GPU_OPERATOR,
            self.namespace.metadata.name,
            gpu_operator_values(args, monitor_labels),
            child,
        )
        self.release_name = GPU_OPERATOR.release
        self.register_outputs({"namespace": self.namespace.metadata.name, "release": self.release.name})
