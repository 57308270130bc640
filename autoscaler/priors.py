"""Engine inputs from the API: a VariantAutoscaling's variants with their capacity priors filled in."""

from autoscaler.accelerators import ACCELERATORS, batch_defaults
from autoscaler.api import Variant
from autoscaler.engine import VariantSpec

# Priors are for replicas of 4 GPUs (the seed's shape); capacity scales with the GPU count, decode speed is kept.
PRIOR_GPUS = 4
FALLBACK_DECODE_STEP_S = 0.025
FALLBACK_CAPACITY_RPS = 2.0


def variant_spec(variant: Variant) -> VariantSpec:
    known = ACCELERATORS.get(variant.accelerator_type)
    capacity = known.capacity_rps * variant.gpus_per_replica / PRIOR_GPUS if known else FALLBACK_CAPACITY_RPS
    step = known.decode_step_ms / 1000 if known else FALLBACK_DECODE_STEP_S
    return VariantSpec(
        name=variant.name,
        cost=variant.cost,
        min_replicas=variant.min_replicas,
        max_replicas=variant.max_replicas,
        decode_step_s=variant.decode_step_seconds or step,
        capacity_rps=variant.capacity_rps or capacity,
        k_tok_s=known.k_tok_ms / 1000 if known else None,
        max_num_batched_tokens=variant.max_num_batched_tokens or batch_defaults(variant.accelerator_type)[0],
    )
