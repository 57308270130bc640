"""Model serving: what each variant's pods get, one endpoint per model, and user edits that need no code change."""

import itertools
import json
import math
from typing import Any

import pytest
import yaml

from autoscaler.accelerators import ACCELERATORS, FALLBACK_ACCELERATOR
from autoscaler.api import MODEL_LABEL, SERVING_LABEL, VARIANT_LABEL
from components.model_serving.args import ModelArgs
from components.model_serving.pod import server_args
from components.model_storage.volume import MODELS_CLAIM, WeightsVolume, weights_path
from components.pins import (
    SIMULATOR_IMAGE,
    SIMULATOR_OPTIONS,
    TGI_IMAGE,
    TGI_OPTIONS,
    VLLM_IMAGE,
    VLLM_OPTIONS,
)
from stack.config import ConfigError, parse_stack_config
from stack.render import Rendered, validate_rendered
from tests.conftest import Render, stack_config


def objects(rendered: Rendered, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for docs in rendered.documents.values() for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_variant_is_a_deployment_serving_the_model_id(rendered_stacks: dict[str, Rendered], stack: str) -> None:
    rendered = rendered_stacks[stack]
    deployments = objects(rendered, "Deployment")
    for model in rendered.config.models:
        for variant in model.variants:
            deployment = deployments[variant.name]
            assert deployment["metadata"]["namespace"] == model.namespace
            assert deployment["spec"]["replicas"] == variant.min_replicas
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert pod_labels[MODEL_LABEL] == model.name and pod_labels[VARIANT_LABEL] == variant.name
            assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
            args = container(deployment)["args"]
            assert arg(args, "--served-model-name") == model.model_id


def test_prod_gpu_variants(rendered_stacks: dict[str, Rendered]) -> None:
    rendered = rendered_stacks["prod"]
    deployments = objects(rendered, "Deployment")
    for variant in rendered.config.models[0].variants:
        deployment = deployments[variant.name]
        pod = deployment["spec"]["template"]["spec"]
        server = container(deployment)
        assert server["image"] == VLLM_IMAGE
        assert arg(server["args"], "--tensor-parallel-size") == "4"
        assert server["resources"]["limits"]["nvidia.com/gpu"] == "4"
        assert server["resources"]["requests"]["nvidia.com/gpu"] == "4"
        term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
        assert term["matchExpressions"] == [
            {
                "key": "nvidia.com/gpu.product",
                "operator": "In",
                "values": list(ACCELERATORS[variant.accelerator_type].products),
            }
        ]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "20Gi"}} in pod["volumes"]
        assert server["startupProbe"]["periodSeconds"] * server["startupProbe"]["failureThreshold"] == 3600
        assert server["livenessProbe"]["httpGet"]["path"] == "/health"
        assert pod["terminationGracePeriodSeconds"] >= 60
        assert server["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
        # Pod Security `restricted`: non-root, read-only root, caches under /tmp.
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] >= 10000
        assert (
            server["securityContext"]["readOnlyRootFilesystem"]
            and not server["securityContext"]["allowPrivilegeEscalation"]
        )
        env = {e["name"]: e["value"] for e in server["env"]}
        assert env["HF_HOME"].startswith("/tmp/") and env["HF_HUB_OFFLINE"] == "1"
        # Weights come read-only from the shared JuiceFS claim, at the model's own path.
        assert {"name": "weights", "persistentVolumeClaim": {"claimName": MODELS_CLAIM, "readOnly": True}} in pod[
            "volumes"
        ]
        assert {"name": "weights", "mountPath": "/models", "readOnly": True} in server["volumeMounts"]
        assert server["args"][0] == f"/models/{weights_path(rendered.config.models[0].model_id)}"


def test_dev_runs_simulators_without_gpus(rendered_stacks: dict[str, Rendered]) -> None:
    deployments = {
        n: d for n, d in objects(rendered_stacks["dev"], "Deployment").items() if MODEL_LABEL in d["metadata"]["labels"]
    }
    concurrency = {}
    for name, deployment in deployments.items():
        server = container(deployment)
        assert server["image"] == SIMULATOR_IMAGE
        assert "nvidia.com/gpu" not in server["resources"]["limits"]
        assert "tolerations" not in deployment["spec"]["template"]["spec"]
        assert server["securityContext"]["readOnlyRootFilesystem"] is True
        concurrency[name] = int(arg(server["args"], "--max-num-seqs"))
    # The simulated variants keep the real ones' ordering of capacity, so load spills from cheap to fast.
    assert concurrency["llama-70b-l40s"] < concurrency["llama-70b-a100"] < concurrency["llama-70b-h100"]


def test_a_simulator_of_an_unknown_accelerator_serves_like_the_one_the_autoscaler_assumes() -> None:
    """The autoscaler plans a variant of an unknown accelerator type with the fallback accelerator's profile
    (autoscaler/priors.py); the simulator standing in for such a variant serves like that accelerator."""

    def simulated(accelerator: str, **selector: str) -> list[str]:
        variant = {"name": "v", "runtime": "simulator", "acceleratorType": accelerator, "cost": 1}
        if selector:
            variant["nodeSelector"] = selector
        model = ModelArgs.model_validate({"name": "m", "modelID": "org/m", "variants": [variant]})
        return server_args(model, model.variants[0], None)

    assert simulated("MI300X", vendor="amd") == simulated(FALLBACK_ACCELERATOR)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_one_service_per_model_selects_every_variant(rendered_stacks: dict[str, Rendered], stack: str) -> None:
    rendered = rendered_stacks[stack]
    services = objects(rendered, "Service")
    deployments = objects(rendered, "Deployment")
    for model in rendered.config.models:
        selector = services[model.name]["spec"]["selector"]
        assert selector == {SERVING_LABEL: "true", MODEL_LABEL: model.name}
        for variant in model.variants:
            assert selector.items() <= deployments[variant.name]["spec"]["template"]["metadata"]["labels"].items()
        others = [d for d in deployments.values() if d["metadata"]["labels"].get(MODEL_LABEL) != model.name]
        assert all(not selector.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in others)


def test_replicas_belong_to_the_autoscaler(render_config: Render) -> None:
    def ignored(raw: dict[str, Any]) -> set[tuple[str, ...]]:
        rendered = render_config(raw)
        servers = [
            d for d in rendered.declared if d.type == "kubernetes:apps/v1:Deployment" and MODEL_LABEL in str(d.inputs)
        ]
        return {d.ignore_changes for d in servers}

    assert ignored(stack_config("prod")) == {("spec.replicas",)}
    raw = stack_config("prod")
    raw["autoscaler"] = {"enabled": False}
    assert ignored(raw) == {()}, "without the autoscaler, the stack file owns replicas"


def test_pod_disruption_budget_per_variant(rendered_stacks: dict[str, Rendered]) -> None:
    pdbs = objects(rendered_stacks["prod"], "PodDisruptionBudget")
    for variant in rendered_stacks["prod"].config.models[0].variants:
        assert pdbs[variant.name]["spec"]["maxUnavailable"] == 1
        assert pdbs[variant.name]["spec"]["selector"]["matchLabels"][VARIANT_LABEL] == variant.name


def test_user_edits_render_without_code_change(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["models"][0]["variants"].append(
        {"name": "llama-70b-h200", "acceleratorType": "H200", "gpusPerReplica": 2, "cost": 30, "maxReplicas": 2}
    )
    raw["models"].append(
        {
            "name": "mistral-7b",
            "modelID": "mistralai/Mistral-7B-Instruct-v0.3",
            "namespace": "small",
            "maxModelLen": 8192,
            "variants": [
                {
                    "name": "mistral-tgi",
                    "runtime": "tgi",
                    "acceleratorType": "L40S",
                    "gpusPerReplica": 1,
                    "cost": 1.3,
                    "minReplicas": 1,
                },
                {
                    "name": "mistral-mi300",
                    "acceleratorType": "MI300X",
                    "nodeSelector": {"amd.com/gpu.product": "MI300X"},
                    "gpusPerReplica": 1,
                    "cost": 3,
                    "image": "rocm/vllm:v0.9.1",
                },
            ],
            "endpoint": {"route": "ingress", "host": "mistral.example.com", "tlsSecretName": "mistral-tls"},
        }
    )
    rendered = render_config(raw)
    assert validate_rendered(rendered).errors == []
    deployments = objects(rendered, "Deployment")
    h200 = container(deployments["llama-70b-h200"])
    assert arg(h200["args"], "--tensor-parallel-size") == "2"
    tgi = container(deployments["mistral-tgi"])
    assert tgi["image"] == TGI_IMAGE
    assert arg(tgi["args"], "--num-shard") == "1" and arg(tgi["args"], "--max-total-tokens") == "8192"
    assert deployments["mistral-tgi"]["metadata"]["namespace"] == "small"
    mi300 = deployments["mistral-mi300"]["spec"]["template"]["spec"]
    assert mi300["nodeSelector"] == {"amd.com/gpu.product": "MI300X"} and "affinity" not in mi300
    assert container(deployments["mistral-mi300"])["image"] == "rocm/vllm:v0.9.1"
    assert set(objects(rendered, "Namespace")) >= {"llm", "small"}
    ingress = objects(rendered, "Ingress")["mistral-7b"]["spec"]
    assert ingress["rules"][0]["host"] == "mistral.example.com"
    assert ingress["tls"] == [{"hosts": ["mistral.example.com"], "secretName": "mistral-tls"}]


def test_http_route_attaches_to_the_gateway(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["models"][0]["endpoint"] = {
        "route": "httproute",
        "host": "llm.example.com",
        "gateway": {"name": "public", "namespace": "gw"},
    }
    route = objects(render_config(raw), "HTTPRoute")["llama-70b"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gw"}]
    assert route["spec"]["rules"] == [{"backendRefs": [{"name": "llama-70b", "port": 8000}]}]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"acceleratorType": "B200"}, "models[0].variants[0].acceleratorType: unknown type"),
        ({"gpusPerReplica": 6}, "models[0].variants[0].gpusPerReplica: must be a power of two"),
        ({"minReplicas": 9}, "models[0].variants[0].minReplicas: must be <= maxReplicas (8)"),
        ({"image": "vllm/vllm-openai"}, "models[0].variants[0].image: must be pinned to a tag or digest"),
    ],
)
def test_bad_variant_input(edit: dict[str, Any], expected: str) -> None:
    raw = stack_config("prod")
    raw["models"][0]["variants"][0].update(edit)
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert any(e.startswith(expected) for e in caught.value.errors), caught.value.errors


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ({"route": "ingress"}, "models[0].endpoint.host: required when route is ingress"),
        (
            {"route": "httproute", "host": "a.example.com"},
            "models[0].endpoint.gateway: required when route is httproute (the Gateway that terminates TLS)",
        ),
        (
            {"tlsSecretName": "x"},
            "models[0].endpoint.route: tlsSecretName and ingressClassName apply to route: ingress only",
        ),
    ],
)
def test_bad_endpoint_input(endpoint: dict[str, Any], expected: str) -> None:
    raw = stack_config("prod")
    raw["models"][0]["endpoint"] = endpoint
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert caught.value.errors == [expected]


def test_inference_pool_with_its_endpoint_picker(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["models"][0]["endpoint"] = {
        "route": "httproute",
        "host": "llm.example.com",
        "gateway": {"name": "inference-gateway"},
        "inferencePool": True,
    }
    rendered = render_config(raw)
    assert validate_rendered(rendered).errors == []
    pool = objects(rendered, "InferencePool")["llama-70b"]
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    assert pool["spec"]["selector"]["matchLabels"] == {SERVING_LABEL: "true", MODEL_LABEL: "llama-70b"}
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    picker = pool["spec"]["endpointPickerRef"]["name"]
    service = objects(rendered, "Service")[picker]
    assert service["spec"]["ports"][0]["port"] == pool["spec"]["endpointPickerRef"]["port"]["number"]
    epp = objects(rendered, "Deployment")[picker]
    assert arg(container(epp)["args"], "--pool-name") == "llama-70b"
    role = objects(rendered, "Role")[picker]
    assert all("*" not in r["verbs"] for r in role["rules"])
    route = objects(rendered, "HTTPRoute")["llama-70b"]
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama-70b"}
    ]
    allowed = objects(rendered, "NetworkPolicy")[picker]["spec"]["ingress"]
    assert allowed == [{"ports": [{"protocol": "TCP", "port": 9002}]}, {"ports": [{"protocol": "TCP", "port": 9090}]}]
    # Flow control queues requests while no replica is ready; Prometheus reads its queue without a token.
    config = yaml.safe_load(objects(rendered, "ConfigMap")[picker]["data"]["plugins.yaml"])
    assert config["featureGates"] == ["flowControl"]
    assert "--metrics-endpoint-auth=false" in container(epp)["args"]
    pod_labels = epp["spec"]["template"]["metadata"]["labels"]
    monitors = objects(rendered, "Release")["kube-prometheus-stack"]["spec"]["values"]["prometheus"]
    pickers = next(m for m in monitors["additionalPodMonitors"] if m["name"] == "llm-endpoint-pickers")
    assert pickers["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("runtime", ["vllm", "tgi", "simulator"])
def test_every_server_option_exists_in_the_pinned_runtime(runtime: str) -> None:
    """A server exits at start on an option its version does not have: each runtime gets only options of its own
    pinned argument parser (the sets in components/pins.py, with where each was confirmed)."""
    known = {"vllm": VLLM_OPTIONS, "tgi": TGI_OPTIONS, "simulator": SIMULATOR_OPTIONS}[runtime]
    variant = {"name": "v", "runtime": runtime, "acceleratorType": "L40S", "cost": 1}
    raw = {"name": "m", "modelID": "org/model-8b", "maxModelLen": 8192, "variants": [variant]}
    model = ModelArgs.model_validate(raw)
    args = server_args(model, model.variants[0], WeightsVolume("llm-models", "org/model-8b"))
    options = [a for a in args if a.startswith("--")]
    assert options and set(options) <= known
    assert ("--served-model-name" in options) == (runtime != "tgi")


def test_vllm_gets_histogram_edges_at_the_models_objectives() -> None:
    """vLLM's default TTFT edges jump from 1 s to 2.5 s: the server is given an edge at each objective, in the
    form vLLM 0.33 validates (known families, finite, positive, strictly increasing lists)."""
    variant = {"name": "v", "acceleratorType": "L40S", "cost": 1}
    raw = {"name": "m", "modelID": "org/m", "slo": {"ttftSeconds": 2.0, "tpotSeconds": 0.06}, "variants": [variant]}
    model = ModelArgs.model_validate(raw)
    args = server_args(model, model.variants[0], None)
    buckets = json.loads(args[args.index("--custom-histogram-buckets") + 1])
    assert set(buckets) == {"time_to_first_token", "inter_token_latency"}
    for edges in buckets.values():
        assert all(0 < e < math.inf for e in edges) and all(a < b for a, b in itertools.pairwise(edges))
    assert 2.0 in buckets["time_to_first_token"] and 0.06 in buckets["inter_token_latency"]
    assert {1.0, 2.5} <= set(buckets["time_to_first_token"])  # vLLM's own edges are kept
