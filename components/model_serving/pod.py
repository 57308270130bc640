"""The pod of one model-server variant, as plain manifest dicts: a pure function of the model and the variant.

llm-d conventions: the model is served under its model id (`--served-model-name`), which is also the `model_name`
label of every `vllm:*` metric the autoscaler queries by; weights come read-only from the shared volume.
"""

import math
from typing import Any

from autoscaler.accelerators import (
    ACCELERATORS,
    FALLBACK_ACCELERATOR,
    PRIOR_OUTPUT_TOKENS,
    PRIOR_PROMPT_TOKENS,
    PRODUCT_LABEL,
)
from autoscaler.api import SERVING_PORT, SERVING_PORT_NAME, serving_labels
from autoscaler.buckets import slo_buckets_arg
from autoscaler.priors import CAPACITY_RPS_ITL_S
from components.args import GPU_TOLERATION
from components.kube import PINNED_BY_TAG, RESTRICTED_CONTAINER, checkov_skips, labels, restricted_pod
from components.model_serving.args import ModelArgs, VariantArgs
from components.model_storage.volume import MODELS_MOUNT, WEIGHTS_UID, WeightsVolume
from components.pins import SIMULATOR_IMAGE, TGI_IMAGE, VLLM_IMAGE

DEFAULT_IMAGES = {"vllm": VLLM_IMAGE, "tgi": TGI_IMAGE, "simulator": SIMULATOR_IMAGE}
# A 70B model loads in ~3.5 minutes warm and over 10 cold: up to an hour before liveness applies (llm-d: 30 s x 120).
STARTUP_PERIOD_SECONDS = 30
STARTUP_FAILURES = 120
# Requests in flight finish before the pod goes; the endpoint is withdrawn first (preStop).
GPU_GRACE_SECONDS = 120
CACHE_ENV = {
    "HOME": "/tmp/home",
    "XDG_CACHE_HOME": "/tmp/cache",
    "HF_HOME": "/tmp/hf",
    "VLLM_CACHE_ROOT": "/tmp/cache/vllm",
    "TRITON_CACHE_DIR": "/tmp/cache/triton",
}
# Model servers pull large images once per node: a pull on every start would tie each restart to the registry.
GPU_PULL_POLICY = "CKV_K8S_15=GPU model-server images are tens of GB and pinned by tag: pulled once per node"


def pod_labels(model: ModelArgs, variant: VariantArgs) -> dict[str, str]:
    return labels("model-server", {**serving_labels(model.name, variant.name), "app.kubernetes.io/name": model.name})


def server_args(model: ModelArgs, variant: VariantArgs, weights: WeightsVolume | None) -> list[str]:
    """Command-line of the server; without a weights volume vLLM and TGI fetch the model by id themselves."""
    source = f"{MODELS_MOUNT}/{weights.sub_path}" if weights else model.model_id
    port = str(SERVING_PORT)
    if variant.runtime == "vllm":
        args = [source, "--served-model-name", model.model_id, "--port", port]
        args += ["--tensor-parallel-size", str(variant.gpus_per_replica)]
        args += ["--gpu-memory-utilization", str(model.gpu_memory_utilization)]
        args += ["--max-model-len", str(model.max_model_len)] if model.max_model_len else []
        budget, seqs = variant.batch
        args += ["--max-num-batched-tokens", str(budget), "--max-num-seqs", str(seqs)]
        # Edges at the model's objectives, so the autoscaler reads the shares within them exactly.
        args += ["--custom-histogram-buckets", slo_buckets_arg(model.slo.ttft_seconds, model.slo.tpot_seconds)]
    elif variant.runtime == "tgi":
        # TGI has no served-model-name: it answers any model name with its one model (pins.TGI_OPTIONS).
        args = ["--model-id", source, "--port", port, "--hostname", "0.0.0.0"]
        args += ["--num-shard", str(variant.gpus_per_replica)]
        args += ["--max-total-tokens", str(model.max_model_len)] if model.max_model_len else []
    else:
        args = ["--model", model.model_id, "--served-model-name", model.model_id, "--port", port]
        args += simulator_profile(variant)
    return args + model.extra_args


def simulator_profile(variant: VariantArgs) -> list[str]:
    """A small replica of the variant's accelerator: concurrency and speed keep the ratios between variants, so a
    laptop load generator saturates the cheap variant first and the autoscaler has something to do. An unknown
    accelerator type replicates the one the autoscaler assumes for it."""
    prior = ACCELERATORS.get(variant.accelerator_type, ACCELERATORS[FALLBACK_ACCELERATOR])
    capacity = prior.profile().rate_at_itl(CAPACITY_RPS_ITL_S, PRIOR_PROMPT_TOKENS, PRIOR_OUTPUT_TOKENS)
    step_ms = prior.decode_step_ms
    return [
        "--max-num-seqs",
        str(max(2, math.ceil(capacity * 4))),
        "--inter-token-latency",
        f"{step_ms:g}ms",
        "--time-to-first-token",
        f"{step_ms * 10:g}ms",
        "--time-factor-under-load",
        "2.0",
    ]


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": SERVING_PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _resources(variant: VariantArgs) -> dict[str, Any]:
    if not variant.uses_gpus:
        cpu, memory = variant.cpu or "500m", variant.memory or "256Mi"
        return {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": cpu, "memory": memory}}
    gpus = variant.gpus_per_replica
    cpu, memory = variant.cpu or str(4 * gpus), variant.memory or f"{24 * gpus}Gi"
    limits = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)}
    return {"requests": dict(limits), "limits": limits}


def server_container(model: ModelArgs, variant: VariantArgs, weights: WeightsVolume | None) -> dict[str, Any]:
    ready_path = "/health" if variant.runtime == "tgi" else "/v1/models"
    container: dict[str, Any] = {
        "name": "server",
        "image": variant.image or DEFAULT_IMAGES[variant.runtime],
        "args": server_args(model, variant, weights),
        "ports": [{"name": SERVING_PORT_NAME, "containerPort": SERVING_PORT, "protocol": "TCP"}],
        "resources": _resources(variant),
        "startupProbe": _probe(ready_path, STARTUP_PERIOD_SECONDS, STARTUP_FAILURES),
        "readinessProbe": _probe(ready_path, 10, 3),
        "livenessProbe": _probe("/health", 10, 3),
        "volumeMounts": [],
        "env": [],
    }
    container["securityContext"] = RESTRICTED_CONTAINER
    container["volumeMounts"].append({"name": "tmp", "mountPath": "/tmp"})
    container["imagePullPolicy"] = "IfNotPresent" if variant.uses_gpus else "Always"
    if variant.uses_gpus:
        container["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "10"]}}}
        # A read-only root: every cache the server writes (compile caches, the hub) lives under /tmp.
        container["env"] += [{"name": k, "value": v} for k, v in CACHE_ENV.items()]
        if weights:
            container["volumeMounts"].append({"name": "weights", "mountPath": MODELS_MOUNT, "readOnly": True})
            container["env"].append({"name": "HF_HUB_OFFLINE", "value": "1"})
    return container


def pod_spec(model: ModelArgs, variant: VariantArgs, weights: WeightsVolume | None) -> dict[str, Any]:
    # Weights fetched by id land in /tmp: no size limit then; otherwise room for compile caches.
    tmp_size = {} if variant.uses_gpus and not weights else {"sizeLimit": "20Gi" if variant.uses_gpus else "64Mi"}
    spec: dict[str, Any] = {
        "securityContext": restricted_pod(WEIGHTS_UID),
        "containers": [server_container(model, variant, weights)],
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": GPU_GRACE_SECONDS if variant.uses_gpus else 30,
        "volumes": [{"name": "tmp", "emptyDir": tmp_size}],
    }
    if variant.node_selector:
        spec["nodeSelector"] = dict(variant.node_selector)
    if not variant.uses_gpus:
        return spec
    if not variant.node_selector:
        products = list(ACCELERATORS[variant.accelerator_type].products)
        term = {"matchExpressions": [{"key": PRODUCT_LABEL, "operator": "In", "values": products}]}
        spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
    spec["tolerations"] = [GPU_TOLERATION.model_dump(by_alias=True, exclude_none=True)]
    spec["volumes"].append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "20Gi"}})
    if weights:
        spec["volumes"].append(
            {"name": "weights", "persistentVolumeClaim": {"claimName": weights.claim, "readOnly": True}}
        )
    return spec


def deployment_spec(model: ModelArgs, variant: VariantArgs, weights: WeightsVolume | None) -> dict[str, Any]:
    """Replicas start at minReplicas; a GPU rollout replaces pods one at a time without needing a spare GPU."""
    selector = serving_labels(model.name, variant.name)
    spec: dict[str, Any] = {
        "replicas": variant.min_replicas,
        "selector": {"matchLabels": selector},
        "template": {"metadata": {"labels": pod_labels(model, variant)}, "spec": pod_spec(model, variant, weights)},
    }
    if variant.uses_gpus:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return spec


def deployment_annotations(variant: VariantArgs) -> dict[str, str]:
    return checkov_skips(PINNED_BY_TAG, *([GPU_PULL_POLICY] if variant.uses_gpus else []))
