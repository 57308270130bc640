"""The autoscaler's API: the thresholds ConfigMap format (and, with the controller, VariantAutoscaling).

The stack config, the rendered ConfigMap and the controller all read these models, so the format is written once.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

THRESHOLDS_CONFIGMAP = "capacity-scaling-config"

# Labels of model-server pods (llm-d conventions): the Services, monitors and the autoscaler select by these.
SERVING_LABEL = "llm-d.ai/inference-serving"
MODEL_LABEL = "llm-d.ai/model"
ROLE_LABEL = "llm-d.ai/role"
VARIANT_LABEL = "llm-platform.io/variant"
# Model servers expose the OpenAI API and Prometheus metrics on this named port.
SERVING_PORT_NAME = "http"
SERVING_PORT = 8000
METRICS_PATH = "/metrics"

# The autoscaler's own pods and metrics (names compatible with WVA's, for users who actuate with HPA or KEDA).
AUTOSCALER_APP = "llm-platform-autoscaler"
AUTOSCALER_METRICS_PORT_NAME = "metrics"
AUTOSCALER_METRICS_PORT = 8080
METRIC_DESIRED_REPLICAS = "wva_desired_replicas"  # gauge {model_id, model_namespace, variant, accelerator}
METRIC_CURRENT_REPLICAS = "wva_current_replicas"  # gauge, same labels
METRIC_VARIANT_COST = "wva_variant_cost_per_replica_hour"  # gauge, same labels
METRIC_DECISIONS = "wva_scaling_decisions_total"  # counter {model_id, model_namespace, variant, direction, reason}
METRIC_METRICS_AVAILABLE = "wva_metrics_available"  # gauge 0/1 {model_id, model_namespace}
METRIC_RECONCILE_SECONDS = "wva_reconcile_duration_seconds"  # histogram
METRIC_RECONCILE_ERRORS = "wva_reconcile_errors_total"  # counter
METRIC_LAST_RECONCILE = "wva_last_reconcile_timestamp_seconds"  # gauge, unix time


def serving_labels(model: str, variant: str) -> dict[str, str]:
    """The labels of one variant's pods; the model's endpoint selects all variants by the first three."""
    return {SERVING_LABEL: "true", MODEL_LABEL: model, ROLE_LABEL: "decode", VARIANT_LABEL: variant}


class ApiModel(BaseModel):
    """camelCase on the wire, unknown keys rejected: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Thresholds(ApiModel):
    """The seed's saturation guardrail (per replica, peak over one minute)."""

    kv_cache_threshold: float = Field(0.80, gt=0, le=1)
    queue_length_threshold: float = Field(5.0, gt=0)
    kv_spare_trigger: float = Field(0.10, ge=0, le=1)
    queue_spare_trigger: float = Field(3.0, ge=0)

    @model_validator(mode="after")
    def _triggers_below_thresholds(self) -> "Thresholds":
        if self.kv_spare_trigger >= self.kv_cache_threshold:
            raise ValueError(
                f"kvSpareTrigger ({self.kv_spare_trigger:g}) must be < kvCacheThreshold ({self.kv_cache_threshold:g})"
            )
        if self.queue_spare_trigger >= self.queue_length_threshold:
            raise ValueError(
                f"queueSpareTrigger ({self.queue_spare_trigger:g}) must be < "
                f"queueLengthThreshold ({self.queue_length_threshold:g})"
            )
        return self


class ThresholdOverride(Thresholds):
    """Thresholds for one model in one namespace, replacing the `default` entry for it."""

    model_id: str = Field(alias="model_id", min_length=1)
    namespace: str = Field(min_length=1)
