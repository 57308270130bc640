"""The autoscaler's API models read a stack file the same way the stack config does."""

import pytest

from autoscaler.accelerators import ACCELERATORS, PRIOR_OUTPUT_TOKENS, PRIOR_PROMPT_TOKENS
from autoscaler.api import VariantAutoscalingSpec, spec_from_stack_model
from autoscaler.priors import variant_spec
from stack.config import parse_stack_config
from tests.conftest import stack_config


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_model_and_variant_autoscaling_agree(stack: str) -> None:
    raw = stack_config(stack)
    config = parse_stack_config(raw)
    for raw_model, model in zip(raw["models"], config.models, strict=True):
        spec = spec_from_stack_model(raw_model)
        assert spec.model_id == model.model_id
        assert [
            (
                v.name,
                v.accelerator_type,
                v.cost,
                v.gpus_per_replica,
                v.min_replicas,
                v.max_replicas,
                v.scale_target_ref.name,
            )
            for v in spec.variants
        ] == [
            (v.name, v.accelerator_type, v.cost, v.gpus_per_replica, v.min_replicas, v.max_replicas, v.name)
            for v in model.variants
        ]
        assert spec.slo.tpot_seconds == model.slo.tpot_seconds


def test_profiles_follow_the_accelerator_gpu_count_overrides_and_deprecated_fields() -> None:
    spec = VariantAutoscalingSpec.model_validate(
        {
            "modelID": "m",
            "variants": [
                {"name": "h100", "acceleratorType": "H100", "cost": 40, "scaleTargetRef": {"name": "h100"}},
                {
                    "name": "h2",
                    "acceleratorType": "H100",
                    "gpusPerReplica": 2,
                    "cost": 20,
                    "scaleTargetRef": {"name": "h"},
                },
                {
                    "name": "mi",
                    "acceleratorType": "MI300X",
                    "cost": 9,
                    "capacityRps": 3.5,
                    "decodeStepSeconds": 0.02,
                    "scaleTargetRef": {"name": "mi"},
                },
                {
                    "name": "measured",
                    "acceleratorType": "L40S",
                    "cost": 5,
                    "profile": {"t0Ms": 30, "kTokMs": 0.25},
                    "scaleTargetRef": {"name": "l"},
                },
            ],
        }
    )
    four, two, mapped, measured = (variant_spec(v).profile for v in spec.variants)
    assert four == ACCELERATORS["H100"].profile()
    # Half the GPUs: every token costs twice as much and the KV cache is half; an iteration's fixed cost is kept.
    assert two.k_tok_s == pytest.approx(2 * four.k_tok_s) and two.kv_capacity == four.kv_capacity // 2
    assert two.t0_s == four.t0_s
    # The deprecated fields still mean what they said: an idle ITL, and requests/s at 100 ms on a conversation mix.
    assert mapped.t0_s == 0.02
    assert mapped.rate_at_itl(0.1, PRIOR_PROMPT_TOKENS, PRIOR_OUTPUT_TOKENS) == pytest.approx(3.5)
    assert (measured.t0_s, measured.k_tok_s) == (0.03, 0.00025)
    assert measured.k_kv_s == ACCELERATORS["L40S"].profile().k_kv_s  # fields not set keep the type's


def test_a_stack_models_autoscaling_priors_reach_its_variant_autoscaling() -> None:
    variant = {"name": "l", "acceleratorType": "L40S", "cost": 5, "coldStartSeconds": 420, "profile": {"t0Ms": 30}}
    spec = spec_from_stack_model({"modelID": "m", "headroom": 0.5, "variants": [variant]})
    assert spec.headroom == 0.5
    engine = variant_spec(spec.variants[0])
    assert engine.cold_start_s == 420 and engine.profile.t0_s == 0.03
