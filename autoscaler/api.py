"""The autoscaler's API: the thresholds ConfigMap format (and, with the controller, VariantAutoscaling).

The stack config, the rendered ConfigMap and the controller all read these models, so the format is written once.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

THRESHOLDS_CONFIGMAP = "capacity-scaling-config"


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
