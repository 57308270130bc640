"""The autoscaler's API models read a stack file the same way the stack config does."""

import pytest

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


def test_priors_follow_the_accelerator_and_gpu_count() -> None:
    spec = VariantAutoscalingSpec.model_validate(
        {
            "modelID": "m",
            "variants": [
                {"name": "h100", "acceleratorType": "H100", "cost": 40, "scaleTargetRef": {"name": "h100"}},
                {
                    "name": "h100x2",
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
                    "scaleTargetRef": {"name": "mi"},
                },
            ],
        }
    )
    four, two, custom = (variant_spec(v) for v in spec.variants)
    assert four.capacity_rps == pytest.approx(7.1) and two.capacity_rps == pytest.approx(3.55)
    assert four.decode_step_s == pytest.approx(0.0152)
    assert custom.capacity_rps == 3.5
