"""The GPU Operator component: its namespace and the chart values a GPU cluster depends on."""

from typing import Any

from components.gpu_operator.args import GpuOperatorArgs
from components.gpu_operator.component import TIME_SLICING_CONFIG, gpu_operator_values
from stack.render import Rendered
from tests.conftest import Render, stack_config


def gpu_operator_docs(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in rendered.documents["gpu-operator"]}


def test_prod_namespace_is_privileged_and_release_selected_by_prometheus(rendered_stacks: dict[str, Rendered]) -> None:
    docs = gpu_operator_docs(rendered_stacks["prod"])
    labels = docs["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    values = docs["Release"]["spec"]["values"]
    monitor = values["dcgmExporter"]["serviceMonitor"]
    assert monitor["enabled"] is True
    assert monitor["additionalLabels"] == {"release": "kube-prometheus-stack"}
    assert values["driver"] == {"enabled": True}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["daemonsets"][
        "tolerations"
    ]


def test_dev_has_no_gpu_operator(rendered_stacks: dict[str, Rendered]) -> None:
    assert "gpu-operator" not in rendered_stacks["dev"].documents


def test_no_service_monitor_without_the_monitoring_stack(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["monitoring"] = {"enabled": False}
    raw["autoscaler"] = {"prometheusUrl": "http://prometheus.example:9090"}
    values = gpu_operator_docs(render_config(raw))["Release"]["spec"]["values"]
    assert values["dcgmExporter"]["serviceMonitor"]["enabled"] is False


def test_preinstalled_driver_time_slicing_mig_and_extra_taints() -> None:
    args = GpuOperatorArgs.model_validate(
        {
            "driver": "preinstalled",
            "toolkit": False,
            "migStrategy": "mixed",
            "timeSlicing": {"replicas": 4},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        }
    )
    values = gpu_operator_values(args, {"release": "kps"})
    assert values["driver"] == {"enabled": False}
    assert values["toolkit"] == {"enabled": False}
    assert values["mig"] == {"strategy": "mixed"}
    config = values["devicePlugin"]["config"]
    assert config["create"] is True and config["name"] == TIME_SLICING_CONFIG and config["default"] == "any"
    assert "replicas: 4" in config["data"]["any"]
    taint = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    assert taint in values["daemonsets"]["tolerations"]
    assert taint in values["node-feature-discovery"]["worker"]["tolerations"]


def test_time_slicing_is_off_unless_asked() -> None:
    assert "devicePlugin" not in gpu_operator_values(GpuOperatorArgs(), None)
