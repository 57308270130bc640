"""Bad input always gets a clear error naming its key path, all at once, before any resource is declared."""

import copy
from typing import Any

import pytest

from stack.config import ConfigError, parse_stack_config
from tests.conftest import stack_config

VALID: dict[str, Any] = {
    "models": [
        {
            "name": "llama",
            "modelID": "meta-llama/Llama-2-70b-chat-hf",
            "variants": [
                {"name": "l40s", "acceleratorType": "L40S", "cost": 5, "minReplicas": 1},
                {"name": "h100", "acceleratorType": "H100", "cost": 40},
            ],
        }
    ]
}


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    return caught.value.errors


def edited(path: str, value: Any) -> dict[str, Any]:
    """VALID with one key set; `path` is dotted, list indexes as numbers (`models.0.variants.1.cost`)."""
    raw = copy.deepcopy(VALID)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = raw
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[last] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("models.0.variants.1.cost", 0, "models[0].variants[1].cost: must be greater than 0 (got 0)"),
        ("models.0.variants.1.cost", -5, "models[0].variants[1].cost: must be greater than 0 (got -5)"),
        (
            "models.0.variants.0.minReplicas",
            -1,
            "models[0].variants[0].minReplicas: must be greater than or equal to 0",
        ),
        ("models.0.variants.0.maxReplicas", 0, "models[0].variants[0].maxReplicas: must be greater than or equal to 1"),
        ("models.0.variants.0.minReplicas", 5, "models[0].variants[0].minReplicas: must be <= maxReplicas (4) (got 5)"),
        (
            "models.0.variants.1.acceleratorType",
            "TPU-v5",
            "models[0].variants[1].acceleratorType: unknown type; use one of L40S",
        ),
        ("models.0.variants.1.gpusPerReplica", 3, "models[0].variants[1].gpusPerReplica: must be a power of two"),
        (
            "models.0.variants.1.runtime",
            "ollama",
            "models[0].variants[1].runtime: must be 'vllm', 'tgi' or 'simulator'",
        ),
        (
            "models.0.variants.1.image",
            "vllm/vllm-openai",
            "models[0].variants[1].image: must be pinned to a tag or digest",
        ),
        ("models.0.variants.1.image", "vllm/vllm-openai:latest", "models[0].variants[1].image: must be pinned"),
        (
            "models.0.variants.1.name",
            "l40s",
            "models[0].variants[1].name: duplicate name 'l40s' (first at variants[0])",
        ),
        ("models.0.variants.1.name", "H100_big", "models[0].variants[1].name: must be a DNS-1123 label"),
        ("models.0.variants.1.costt", 3, "models[0].variants[1].costt: unknown key; did you mean 'cost'?"),
        ("models.0.variants", [], "models[0].variants: List should have at least 1 item"),
        ("models.0.modelID", "", "models[0].modelID: String should have at least 1 character"),
        ("models", [], "models: List should have at least 1 item"),
        ("gpuOperator.migStrategy", "all", "gpuOperator.migStrategy: must be 'none', 'single' or 'mixed'"),
        ("gpuOperator.driver", "yes", "gpuOperator.driver: must be 'operator' or 'preinstalled'"),
        (
            "gpuOperator.timeSlicing",
            {"replicas": 1},
            "gpuOperator.timeSlicing.replicas: must be greater than or equal to 2",
        ),
        ("gpuOperator.namespace", "GPU", "gpuOperator.namespace: must be a DNS-1123 label"),
        ("gpuOperator.tolerations", [{"key": "x", "effect": "Never"}], "gpuOperator.tolerations[0].effect: must be"),
        ("monitoring.retention", "two weeks", "monitoring.retention: must be a duration such as 15s, 5m or 30d"),
        ("modelStorage.volumeSize", "100GB", "modelStorage.volumeSize: must be a Kubernetes quantity such as 100Gi"),
        (
            "modelStorage.objectStore",
            {"kind": "external"},
            "modelStorage.objectStore.endpoint: required when kind is external",
        ),
        ("modelStorage.redis", {"kind": "external"}, "modelStorage.redis.url: required when kind is external"),
        (
            "autoscaler.thresholds",
            {"kvCacheThreshold": 1.5},
            "autoscaler.thresholds.kvCacheThreshold: must be less than or equal to 1",
        ),
        (
            "autoscaler.thresholds",
            {"kvSpareTrigger": 0.9},
            "autoscaler.thresholds: kvSpareTrigger (0.9) must be < kvCacheThreshold (0.8)",
        ),
        (
            "autoscaler.thresholds",
            {"queueSpareTrigger": 6},
            "autoscaler.thresholds: queueSpareTrigger (6) must be < queueLengthThreshold (5)",
        ),
        ("autoscaler.intervalSeconds", 1, "autoscaler.intervalSeconds: must be greater than or equal to 5"),
        (
            "autoscaler.overrides",
            [{"model_id": "other", "namespace": "llm"}],
            "autoscaler.overrides[0]: no model 'other' in namespace 'llm'",
        ),
        ("kubernetes.version", "1.12", "kubernetes.version: no schemas for Kubernetes 1.12"),
        ("kubernetes.context", 7, "kubernetes.context: must be a valid string"),
        ("gpuOperater", {}, "gpuOperater: unknown key; did you mean 'gpuOperator'?"),
    ],
)
def test_each_bad_input_names_its_key(path: str, value: Any, expected: str) -> None:
    assert any(e.startswith(expected) for e in errors_of(edited(path, value))), errors_of(edited(path, value))


def test_all_errors_are_reported_at_once() -> None:
    raw = edited("models.0.variants.1.cost", -1)
    raw["models"][0]["variants"][0].update(acceleratorType="MI300X", minReplicas=9)
    raw["gpuOperator"] = {"migStrategy": "all"}
    assert [e.split(":")[0] for e in errors_of(raw)] == [
        "gpuOperator.migStrategy",
        "models[0].variants[0].acceleratorType",
        "models[0].variants[0].minReplicas",
        "models[0].variants[1].cost",
    ]


def test_models_must_be_given() -> None:
    assert errors_of({}) == ["models: is required"]


def test_variant_names_are_unique_per_namespace_across_models() -> None:
    raw = copy.deepcopy(VALID)
    raw["models"].append({**copy.deepcopy(raw["models"][0]), "name": "llama-2"})
    assert errors_of(raw) == [
        "models[1].variants[0].name: 'l40s' is also a variant of models[0]",
        "models[1].variants[1].name: 'h100' is also a variant of models[0]",
    ]
    raw["models"][1]["namespace"] = "other"
    assert parse_stack_config(raw).models[1].namespace == "other"


def test_duplicate_model_names() -> None:
    raw = copy.deepcopy(VALID)
    raw["models"].append(
        {"name": "llama", "modelID": "x", "namespace": "b", "variants": [VALID["models"][0]["variants"][0]]}
    )
    assert errors_of(raw) == ["models[1].name: duplicate name 'llama' (first at models[0])"]


def test_autoscaler_needs_prometheus_and_served_models() -> None:
    raw = edited("monitoring.enabled", False)
    assert errors_of(raw) == ["autoscaler.prometheusUrl: required when monitoring.enabled is false"]
    raw["autoscaler"] = {"prometheusUrl": "https://thanos.example.com"}
    assert str(parse_stack_config(raw).autoscaler.prometheus_url) == "https://thanos.example.com/"

    raw = edited("autoscaler.enabled", False)
    raw["models"][0]["variants"][0]["minReplicas"] = 0
    assert errors_of(raw) == ["models[0].variants: no variant has minReplicas >= 1 and the autoscaler is disabled"]


def test_custom_accelerator_brings_its_node_selector() -> None:
    raw = edited("models.0.variants.1.acceleratorType", "MI300X")
    raw["models"][0]["variants"][1]["nodeSelector"] = {"amd.com/gpu.product": "MI300X"}
    assert parse_stack_config(raw).models[0].variants[1].node_selector == {"amd.com/gpu.product": "MI300X"}


def test_simulator_variants_need_no_tensor_parallel_split() -> None:
    raw = edited("models.0.variants.1.gpusPerReplica", 3)
    raw["models"][0]["variants"][1]["runtime"] = "simulator"
    assert parse_stack_config(raw).models[0].variants[1].gpus_per_replica == 3


def test_defaults_keep_the_shipped_stacks_short() -> None:
    dev = parse_stack_config(stack_config("dev"))
    prod = parse_stack_config(stack_config("prod"))
    assert [v.name for v in prod.models[0].variants] == ["llama-70b-l40s", "llama-70b-a100", "llama-70b-h100"]
    assert [(v.accelerator_type, v.gpus_per_replica, v.cost) for v in prod.models[0].variants] == [
        ("L40S", 4, 5),
        ("A100-80GB", 4, 20),
        ("H100", 4, 40),
    ]
    assert prod.gpu_operator.enabled and not dev.gpu_operator.enabled
    assert {v.runtime for v in dev.models[0].variants} == {"simulator"}
    assert prod.autoscaler.thresholds.model_dump(by_alias=True) == {
        "kvCacheThreshold": 0.80,
        "queueLengthThreshold": 5,
        "kvSpareTrigger": 0.10,
        "queueSpareTrigger": 3,
    }
    assert prod.model_storage.volume_size == "100Gi"


def test_simulator_profiles_are_stack_config_too() -> None:
    raw = edited("simulator", {"profiles": {"L40S": {"t0Ms": 30, "kvCapacityTokens": 300000}}})
    assert parse_stack_config(raw).simulator.profiles["L40S"].t0_ms == 30
    assert errors_of(edited("simulator", {"profiles": {"L40S": {"t0": 30}}})) == [
        "simulator.profiles.L40S.t0: unknown key; did you mean 't0Ms'?"
    ]
