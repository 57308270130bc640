"""What Prometheus scrapes for the platform, as PodMonitors, and the target labels every scraped series carries.

The rules, the dashboards and the autoscaler all query by these labels: `namespace` and `pod` (which the
Prometheus Operator adds to every PodMonitor target), plus `model` and `variant` copied from the serving labels.
"""

import re
from typing import Any

from autoscaler.api import (
    AUTOSCALER_APP,
    AUTOSCALER_METRICS_PORT_NAME,
    METRICS_PATH,
    MODEL_LABEL,
    SERVING_LABEL,
    SERVING_PORT_NAME,
    VARIANT_LABEL,
)
from components.model_serving.inference_pool import PICKER_LABEL, PICKER_METRICS_PORT_NAME

# Job labels of the two kinds of targets, set explicitly so that they do not depend on the monitor's namespace.
MODEL_SERVER_JOB = "llm-model-servers"
AUTOSCALER_JOB = AUTOSCALER_APP
PICKER_JOB = "llm-endpoint-pickers"  # the endpoint pickers' flow-control queue: what wakes a model at zero
# Target labels naming the stack model and the variant a model-server series comes from.
MODEL = "model"
VARIANT = "variant"
APP_NAME_LABEL = "app.kubernetes.io/name"


def pod_label_meta(label: str) -> str:
    """The service-discovery label Prometheus gives a pod label (`llm-d.ai/model` -> `..._llm_d_ai_model`)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _job(name: str) -> dict[str, Any]:
    return {"action": "replace", "targetLabel": "job", "replacement": name}


def _copy(pod_label: str, target_label: str) -> dict[str, Any]:
    return {"action": "replace", "sourceLabels": [pod_label_meta(pod_label)], "targetLabel": target_label}


def pod_monitors(model_namespaces: list[str]) -> list[dict[str, Any]]:
    """The chart's `prometheus.additionalPodMonitors` entries: created with the chart, so no CRD ordering issue."""
    return [
        {
            "name": MODEL_SERVER_JOB,
            "selector": {"matchLabels": {SERVING_LABEL: "true"}},
            "namespaceSelector": {"matchNames": sorted(set(model_namespaces))},
            "podMetricsEndpoints": [
                {
                    "port": SERVING_PORT_NAME,
                    "path": METRICS_PATH,
                    "relabelings": [_job(MODEL_SERVER_JOB), _copy(MODEL_LABEL, MODEL), _copy(VARIANT_LABEL, VARIANT)],
                }
            ],
        },
        {
            "name": PICKER_JOB,
            "selector": {"matchLabels": {PICKER_LABEL: "true"}},
            "namespaceSelector": {"matchNames": sorted(set(model_namespaces))},
            "podMetricsEndpoints": [
                {"port": PICKER_METRICS_PORT_NAME, "path": METRICS_PATH, "relabelings": [_job(PICKER_JOB)]}
            ],
        },
        {
            "name": AUTOSCALER_JOB,
            "selector": {"matchLabels": {APP_NAME_LABEL: AUTOSCALER_APP}},
            "namespaceSelector": {"any": True},
            "podMetricsEndpoints": [
                {"port": AUTOSCALER_METRICS_PORT_NAME, "path": METRICS_PATH, "relabelings": [_job(AUTOSCALER_JOB)]}
            ],
        },
    ]
