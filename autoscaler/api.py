"""The autoscaler's API: VariantAutoscaling (spec and status) and the thresholds ConfigMap format.

The Pulumi component renders these objects and the CRD schema from these models, and the controller and the
simulator read them back with the same models: the format is written once.
"""

from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "wva.llm-d.io"
VERSION = "v1alpha1"
KIND = "VariantAutoscaling"
PLURAL = "variantautoscalings"
THRESHOLDS_CONFIGMAP = "capacity-scaling-config"
# Defaults of a variant, shared with the stack config so that a stack file means the same to both.
DEFAULT_GPUS_PER_REPLICA = 4
DEFAULT_MAX_REPLICAS = 4

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
LEASE_NAME = "llm-platform-autoscaler"  # the leader Lease in the autoscaler's namespace (its RBAC names it)
METRIC_DESIRED_REPLICAS = "wva_desired_replicas"  # gauge {model_id, model_namespace, variant, accelerator}
METRIC_CURRENT_REPLICAS = "wva_current_replicas"  # gauge, same labels
METRIC_VARIANT_COST = "wva_variant_cost_per_replica_hour"  # gauge, same labels
METRIC_VARIANT_CAPACITY = "wva_variant_capacity_rps"  # gauge, same labels: planned requests/s of one replica
METRIC_DECISIONS = "wva_scaling_decisions_total"  # counter {model_id, model_namespace, variant, direction, reason}
METRIC_METRICS_AVAILABLE = "wva_metrics_available"  # gauge 0/1 {model_id, model_namespace}
METRIC_CAPACITY_LIMITED = "wva_variant_capacity_limited"  # gauge 0/1 {model_id, model_namespace, variant, accelerator}
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


class ReplicaProfile(ApiModel):
    """A replica's iteration-time model (REFERENCE section 9), overriding the accelerator type's defaults field by
    field: a variant's `profile` is the engine's prior, `simulator.profiles` the simulated replicas' truth."""

    t0_ms: float | None = Field(None, gt=0)
    k_tok_ms: float | None = Field(None, ge=0)
    k_kv_ms_per_m_tokens: float | None = Field(None, ge=0)
    kv_capacity_tokens: int | None = Field(None, ge=1)
    max_num_seqs: int | None = Field(None, ge=1)


class GpuSupply(ApiModel):
    """What a cluster can give one accelerator type: replicas schedulable at once, of which `warmPool` have their
    nodes up; a replica beyond the warm pool waits `provisionSeconds` for a node to be added."""

    inventory: int = Field(ge=0)
    warm_pool: int | None = Field(None, ge=0, description="default: the whole inventory (no node to add)")
    provision_seconds: float = Field(300.0, ge=0, description="a GPU node added by a cluster autoscaler")

    @model_validator(mode="after")
    def _warm_within_inventory(self) -> "GpuSupply":
        if self.warm_pool is not None and self.warm_pool > self.inventory:
            raise ValueError(f"warmPool ({self.warm_pool}) must be <= inventory ({self.inventory})")
        return self

    @property
    def warm(self) -> int:
        return self.inventory if self.warm_pool is None else self.warm_pool


class SimulatorSettings(ApiModel):
    """`llm-platform:simulator` in a stack file: read by `python -m autoscaler.sim`, ignored by `pulumi up`."""

    profiles: dict[str, ReplicaProfile] = Field(default_factory=dict)
    supply: dict[str, GpuSupply] = Field(default_factory=dict)  # per accelerator type; absent: unlimited


class ScaleTargetRef(ApiModel):
    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(min_length=1)


class Variant(ApiModel):
    """One variant of the model. Its token profile defaults from the accelerator type; set `profile` to calibrate."""

    name: str = Field(min_length=1)
    accelerator_type: str = Field(min_length=1)
    cost: float = Field(gt=0, description="USD per replica-hour")
    gpus_per_replica: int = Field(DEFAULT_GPUS_PER_REPLICA, ge=1)
    min_replicas: int = Field(0, ge=0)
    max_replicas: int = Field(DEFAULT_MAX_REPLICAS, ge=1)
    scale_target_ref: ScaleTargetRef
    cold_start_seconds: float | None = Field(
        None, gt=0, description="prior: seconds from a pod's creation to Ready, until the autoscaler has seen one"
    )
    profile: ReplicaProfile | None = Field(
        None, description="the replica's token profile, where it differs from the accelerator type's (measure yours)"
    )
    capacity_rps: float | None = Field(
        None, gt=0, description="deprecated, use profile: requests/s per replica at 100 ms ITL on a conversation mix"
    )
    decode_step_seconds: float | None = Field(
        None, gt=0, description="deprecated, use profile.t0Ms: inter-token latency of an idle replica"
    )
    max_num_batched_tokens: int | None = Field(
        None, ge=1, description="vLLM's per-step token budget (chunked prefill); default vLLM's for the GPU"
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> "Variant":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must be <= maxReplicas ({self.max_replicas})")
        return self


class Slo(ApiModel):
    ttft_seconds: float = Field(2.0, gt=0)
    tpot_seconds: float = Field(0.1, gt=0)


DEFAULT_HEADROOM = 0.1


class VariantAutoscalingSpec(ApiModel):
    model_id: str = Field(alias="modelID", min_length=1)
    variants: list[Variant] = Field(min_length=1)
    slo: Slo = Slo()
    headroom: float = Field(
        DEFAULT_HEADROOM, ge=0, le=4, description="spare capacity held over the measured demand, as a fraction of it"
    )


class VariantReplicas(ApiModel):
    name: str
    current_replicas: int = 0
    ready_replicas: int = 0
    desired_replicas: int = 0
    # Measured over the ready replicas: KV-cache capacity (vllm:cache_config_info) and generated tokens/s.
    kv_cache_tokens: int | None = None
    generation_tokens_per_second: float | None = None


ConditionType = Literal["MetricsAvailable", "TargetResolved", "Ready", "CapacityLimited"]
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: str


class LastDecision(ApiModel):
    action: str
    reason: str
    time: str


class VariantAutoscalingStatus(ApiModel):
    variants: list[VariantReplicas] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    last_decision: LastDecision | None = None


def spec_from_stack_model(model: Mapping[str, Any]) -> VariantAutoscalingSpec:
    """The VariantAutoscaling spec of one model of a stack file (camelCase keys, as in `Pulumi.<stack>.yaml`).

    Each variant scales the Deployment of its own name. The Pulumi component and the simulator both use this.
    """
    keep = (
        *("name", "acceleratorType", "cost", "gpusPerReplica", "minReplicas", "maxReplicas"),
        *("maxNumBatchedTokens", "coldStartSeconds", "profile"),
    )
    variants = [{**{k: v[k] for k in keep if k in v}, "scaleTargetRef": {"name": v["name"]}} for v in model["variants"]]
    tuned = {k: model[k] for k in ("slo", "headroom") if k in model}
    return VariantAutoscalingSpec.model_validate({"modelID": model["modelID"], "variants": variants, **tuned})


def thresholds_configmap(default: Thresholds, overrides: list[ThresholdOverride]) -> dict[str, str]:
    """The ConfigMap's data: the seed's `default` entry and one entry per override."""
    data = {"default": _yaml(default.model_dump(by_alias=True))}
    for o in overrides:
        data[f"{o.namespace}.{o.model_id}".replace("/", ".").lower()] = _yaml(
            o.model_dump(by_alias=True, exclude_unset=True)
        )
    return data


def parse_thresholds_configmap(data: Mapping[str, str]) -> tuple[Thresholds, list[ThresholdOverride]]:
    """Read the ConfigMap back; raises ValueError naming the entry when any entry is malformed."""
    default = Thresholds()
    overrides = []
    for key, text in sorted(data.items()):
        try:
            raw = yaml.safe_load(text) or {}
            if key == "default":
                default = Thresholds.model_validate(raw)
            else:
                overrides.append(ThresholdOverride.model_validate({**default.model_dump(by_alias=True), **raw}))
        except (yaml.YAMLError, ValueError) as error:
            raise ValueError(f"{THRESHOLDS_CONFIGMAP} entry '{key}': {error}") from None
    return default, overrides


def thresholds_for(
    model_id: str, namespace: str, default: Thresholds, overrides: list[ThresholdOverride]
) -> Thresholds:
    for o in overrides:
        if (o.model_id, o.namespace) == (model_id, namespace):
            return Thresholds.model_validate(o.model_dump(by_alias=True, exclude={"model_id", "namespace"}))
    return default


def _yaml(value: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(value), sort_keys=False)
