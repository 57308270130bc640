"""Engine inputs from the API: a VariantAutoscaling's variants with their token profiles filled in.

A variant's profile is its accelerator type's (or the fallback's), scaled to its GPU count, with vLLM's batch
defaults for the GPU, then what the variant sets: `profile` fields one by one, and the deprecated `decodeStepSeconds`
and `capacityRps`, mapped onto the profile.
"""

from dataclasses import replace

from autoscaler.accelerators import (
    ACCELERATORS,
    FALLBACK_ACCELERATOR,
    PRIOR_OUTPUT_TOKENS,
    PRIOR_PROMPT_TOKENS,
    TokenProfile,
    batch_defaults,
)
from autoscaler.api import ReplicaProfile, Variant
from autoscaler.engine import VariantSpec

# Profiles are for replicas of 4 GPUs (the seed's shape): more GPUs of a type move a token's weights and KV reads
# faster and hold more KV cache; an iteration's fixed cost is kept.
PRIOR_GPUS = 4
# The inter-token latency the deprecated `capacityRps` was stated at.
CAPACITY_RPS_ITL_S = 0.1


def variant_spec(variant: Variant) -> VariantSpec:
    v = variant
    return VariantSpec(v.name, v.cost, v.min_replicas, v.max_replicas, variant_profile(v), v.cold_start_seconds)


def variant_profile(variant: Variant) -> TokenProfile:
    known = ACCELERATORS.get(variant.accelerator_type, ACCELERATORS[FALLBACK_ACCELERATOR])
    scale = PRIOR_GPUS / variant.gpus_per_replica
    budget, seqs = batch_defaults(variant.accelerator_type)
    base = known.profile()
    profile = replace(
        base,
        k_tok_s=base.k_tok_s * scale,
        k_kv_s=base.k_kv_s * scale,
        kv_capacity=int(base.kv_capacity / scale),
        max_num_seqs=seqs,
        max_num_batched_tokens=variant.max_num_batched_tokens or budget,
    )
    profile = with_overrides(profile, variant.profile or ReplicaProfile())
    if variant.decode_step_seconds:
        profile = replace(profile, t0_s=variant.decode_step_seconds)
    if variant.capacity_rps:
        profile = with_capacity(profile, variant.capacity_rps)
    return profile


def with_overrides(profile: TokenProfile, o: ReplicaProfile) -> TokenProfile:
    """The profile with every field the override sets (a measured replica, in the API's units)."""
    return replace(
        profile,
        t0_s=o.t0_ms / 1000 if o.t0_ms is not None else profile.t0_s,
        k_tok_s=o.k_tok_ms / 1000 if o.k_tok_ms is not None else profile.k_tok_s,
        k_kv_s=o.k_kv_ms_per_m_tokens / 1e9 if o.k_kv_ms_per_m_tokens is not None else profile.k_kv_s,
        kv_capacity=o.kv_capacity_tokens or profile.kv_capacity,
        max_num_seqs=o.max_num_seqs or profile.max_num_seqs,
    )


def with_capacity(profile: TokenProfile, capacity_rps: float) -> TokenProfile:
    """The deprecated `capacityRps` (requests/s at 100 ms ITL on the prior shape) as a profile: per-token costs scaled
    by one factor, and the KV cache by its inverse, so the profile serves exactly that rate on that shape."""
    factor = profile.rate_at_itl(CAPACITY_RPS_ITL_S, PRIOR_PROMPT_TOKENS, PRIOR_OUTPUT_TOKENS) / capacity_rps
    return replace(
        profile,
        k_tok_s=profile.k_tok_s * factor,
        k_kv_s=profile.k_kv_s * factor,
        kv_capacity=max(1, int(profile.kv_capacity / factor)),
    )
