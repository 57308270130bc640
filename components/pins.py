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

# Model-server images. vLLM's entrypoint is already `vllm serve`; the `-cu129` tag is its CUDA 12.9 build.
VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.5"
# GPU-free vLLM stand-in with the same OpenAI API and `vllm:*` metrics (dev clusters, end-to-end tests).
SIMULATOR_IMAGE = "ghcr.io/llm-d/llm-d-inference-sim:v0.11.2"

# The autoscaler runs its shipped package on this image (or on a prebuilt one, see autoscaler/Dockerfile).
PYTHON_IMAGE = "python:3.11.14-slim-bookworm"

# Grafana downloads this dashboard from grafana.com by id when its pod starts (NVIDIA's DCGM exporter dashboard).
DCGM_DASHBOARD_GNET_ID = 12239
DCGM_DASHBOARD_REVISION = 2

# The Gateway API Inference Extension's endpoint picker (load-aware routing across a model's replicas).
ENDPOINT_PICKER_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"
