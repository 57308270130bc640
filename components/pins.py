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

# Model-server images, and the options of each pinned version's own argument parser that the platform passes
# (tests check every rendered server argument against these sets).
# vLLM v0.33.0: confirmed in the release wheel (vllm/engine/arg_utils.py, vllm/entrypoints/common/cli_args.py; the
# model is the positional `model_tag`). The entrypoint is already `vllm serve`; `-cu129` is its CUDA 12.9 build.
VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"
VLLM_OPTIONS = frozenset(
    {
        "--served-model-name",
        "--port",
        "--tensor-parallel-size",
        "--gpu-memory-utilization",
        "--max-model-len",
        "--max-num-batched-tokens",
        "--max-num-seqs",
        "--custom-histogram-buckets",
    }
)
# TGI 3.3.5: the launcher's clap `Args` (launcher/src/main.rs at tag v3.3.5). It has no `--served-model-name`: its
# OpenAI API lists the model under `--model-id` and serves any `model` name a client sends with the base model.
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.5"
TGI_OPTIONS = frozenset(
    {"--model-id", "--port", "--hostname", "--num-shard", "--max-input-tokens", "--max-total-tokens"}
)
# GPU-free vLLM stand-in with the same OpenAI API and `vllm:*` metrics (dev clusters, end-to-end tests). v0.10.2 is
# the newest tag of llm-d/llm-d-inference-sim (its release workflow pushes each `v*` tag to ghcr.io); the options
# are its pflag set (pkg/common/parser.go at v0.10.2), latencies as Go durations (`25ms`).
SIMULATOR_IMAGE = "ghcr.io/llm-d/llm-d-inference-sim:v0.10.2"
SIMULATOR_OPTIONS = frozenset(
    {
        "--model",
        "--served-model-name",
        "--port",
        "--max-num-seqs",
        "--max-model-len",
        "--inter-token-latency",
        "--time-to-first-token",
        "--time-factor-under-load",
        "--enable-kvcache",
        "--kv-cache-size",
        "--block-size",
    }
)

# The autoscaler runs its shipped package on this image (or on a prebuilt one, see autoscaler/Dockerfile).
PYTHON_IMAGE = "python:3.11.14-slim-bookworm"

# Grafana downloads this dashboard from grafana.com by id when its pod starts (NVIDIA's DCGM exporter dashboard).
DCGM_DASHBOARD_GNET_ID = 12239
DCGM_DASHBOARD_REVISION = 2

# The Gateway API Inference Extension's endpoint picker (load-aware routing across a model's replicas).
ENDPOINT_PICKER_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"

# Model storage: the JuiceFS CSI driver and SeaweedFS (S3) charts, and the images the storage component runs.
JUICEFS_CSI = HelmChart("https://juicedata.github.io/charts/", "juicefs-csi-driver", "0.32.4", "juicefs-csi-driver")
SEAWEEDFS = HelmChart("https://seaweedfs.github.io/seaweedfs/helm", "seaweedfs", "4.44.0", "seaweedfs")
SEAWEEDFS_TAG = "4.44"  # chrislusf/seaweedfs, the chart's own image
VALKEY_IMAGE = "valkey/valkey:9.1.1"
# Community edition mount image: the CSI mount pods and the format Job run the same juicefs.
JUICEFS_MOUNT_IMAGE = "juicedata/mount:ce-v1.3.3"
# MinIO community edition is archived; this frozen tag on quay.io is the last one. Only on request.
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
