"""The Gateway API Inference Extension for one model: an InferencePool over every variant's pods and its endpoint
picker (EPP), which routes each request to the replica with the least queue and KV-cache pressure.

Needs the extension's CRDs and a Gateway implementation that supports InferencePool backends in the cluster.
"""

from typing import Any

from autoscaler.api import MODEL_LABEL, SERVING_LABEL, SERVING_PORT
from components.kube import PINNED_BY_TAG, RESTRICTED_CONTAINER, checkov_skips, restricted_pod

POOL_API = "inference.networking.k8s.io/v1"
EPP_GRPC_PORT = 9002
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
PICKER_METRICS_PORT_NAME = "metrics"
PICKER_LABEL = "llm-platform.io/endpoint-picker"  # on every picker pod: what Prometheus selects them by
PLUGINS_FILE = "plugins.yaml"
# Queue depth and KV-cache use weigh as much as each other; prefix-cache hits a little more (they save prefill).
# Flow control (off by default in the picker) queues requests while no replica is ready, instead of answering 503:
# a model at zero replicas keeps its requests, and the queue's size is the autoscaler's signal to wake it.
PLUGINS = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
featureGates:
- flowControl
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
"""
API_TOKEN = "CKV_K8S_38=the endpoint picker watches pods and pools with its service account token"


def picker_name(model: str) -> str:
    return f"{model}-epp"


def pool_spec(model: str) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": {SERVING_LABEL: "true", MODEL_LABEL: model}},
        "targetPorts": [{"number": SERVING_PORT}],
        "endpointPickerRef": {"name": picker_name(model), "port": {"number": EPP_GRPC_PORT}},
    }


def picker_rules() -> list[dict[str, Any]]:
    """What the picker watches: the model-server pods, its pool, and the extension's objectives."""
    read = ["get", "list", "watch"]
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": read},
        {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": read},
        {
            "apiGroups": ["inference.networking.x-k8s.io"],
            "resources": ["inferenceobjectives", "inferencemodelrewrites"],
            "verbs": read,
        },
    ]


def picker_deployment_spec(model: str, image: str) -> dict[str, Any]:
    name = picker_name(model)
    selector = {"app.kubernetes.io/name": name}
    health = {"grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"}, "periodSeconds": 10}
    container = {
        "name": "epp",
        "image": image,
        "imagePullPolicy": "Always",
        # Prometheus scrapes the queue size without a token; the network policy admits only the metrics port.
        "args": ["--pool-name", model, "--config-file", f"/config/{PLUGINS_FILE}", "--metrics-endpoint-auth=false"],
        "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "ports": [
            {"name": "grpc", "containerPort": EPP_GRPC_PORT},
            {"name": "grpc-health", "containerPort": EPP_HEALTH_PORT},
            {"name": PICKER_METRICS_PORT_NAME, "containerPort": EPP_METRICS_PORT},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "livenessProbe": health,
        "readinessProbe": health,
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
    }
    return {
        "replicas": 1,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": {**selector, PICKER_LABEL: "true"}},
            "spec": {
                "serviceAccountName": name,
                "securityContext": restricted_pod(65532),
                # Requests routed through the picker may take as long as the model servers' own grace period.
                "terminationGracePeriodSeconds": 130,
                "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": name}}],
            },
        },
    }


def picker_annotations() -> dict[str, str]:
    return checkov_skips(PINNED_BY_TAG, API_TOKEN)
