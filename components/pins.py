"""Every chart version and release name the platform installs, pinned in one place."""

from dataclasses import dataclass


@dataclass(frozen=True)
class HelmChart:
    repo: str
    chart: str
    version: str
    release: str  # fixed: an auto-suffixed release name breaks `release: <name>` selectors


GPU_OPERATOR = HelmChart("https://helm.ngc.nvidia.com/nvidia", "gpu-operator", "v26.7.0", "gpu-operator")
KUBE_PROMETHEUS_STACK = HelmChart(
    "https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "88.5.3", "kube-prometheus-stack"
)
