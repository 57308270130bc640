"""The autoscaler as deployed: CRD from the models, least-privilege RBAC, restricted pods, thresholds, and names that
agree by construction between serving, monitors and the autoscaler."""

import copy
from typing import Any

import pytest

from autoscaler import api
from autoscaler.api import MODEL_LABEL, THRESHOLDS_CONFIGMAP, VARIANT_LABEL, parse_thresholds_configmap, thresholds_for
from stack.config import ConfigError, parse_stack_config
from stack.render import Rendered, validate_rendered
from tests.conftest import Render, stack_config
from tests.test_model_serving import arg, container, objects


def docs(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [d for group in rendered.documents.values() for d in group if d["kind"] == kind]


def only(rendered: Rendered, kind: str) -> dict[str, Any]:
    found = docs(rendered, kind)
    assert len(found) == 1, kind
    return found[0]


def edited_stack() -> dict[str, Any]:
    raw = stack_config("prod")
    raw["models"][0]["variants"].append(
        {"name": "llama-70b-h200", "acceleratorType": "H200", "cost": 30, "maxReplicas": 2}
    )
    raw["models"].append(
        {
            "name": "mistral",
            "modelID": "mistralai/Mistral-7B-Instruct-v0.3",
            "namespace": "small",
            "variants": [
                {"name": "mistral-l40s", "acceleratorType": "L40S", "gpusPerReplica": 1, "cost": 1.3, "minReplicas": 1}
            ],
        }
    )
    return raw


@pytest.fixture
def edited(render_config: Render) -> Rendered:
    return render_config(edited_stack())


def test_names_agree_by_construction(rendered_stacks: dict[str, Rendered], edited: Rendered) -> None:
    """VariantAutoscaling model ID = served model name; variant = Deployment = pod label the controller maps by."""
    for rendered in [*rendered_stacks.values(), edited]:
        deployments = objects(rendered, "Deployment")
        autoscalings = docs(rendered, "VariantAutoscaling")
        assert len(autoscalings) == len(rendered.config.models)
        for va in autoscalings:
            model = next(m for m in rendered.config.models if m.name == va["metadata"]["name"])
            assert va["metadata"]["namespace"] == model.namespace
            for variant in va["spec"]["variants"]:
                deployment = deployments[variant["scaleTargetRef"]["name"]]
                assert deployment["metadata"]["namespace"] == model.namespace
                assert arg(container(deployment)["args"], "--served-model-name") == va["spec"]["modelID"]
                pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
                assert pod_labels[VARIANT_LABEL] == variant["name"] and pod_labels[MODEL_LABEL] == model.name


def test_crd_schema_accepts_rendered_objects_and_rejects_malformed(rendered_stacks: dict[str, Rendered]) -> None:
    rendered = rendered_stacks["prod"]
    assert validate_rendered(rendered).errors == []
    assert not validate_rendered(rendered).custom_kinds, "VariantAutoscaling is checked against its own CRD"
    va = only(rendered, "VariantAutoscaling")
    broken = []
    for edit in (
        lambda s: s["variants"][0].update(cost=0),
        lambda s: s.update(variants=[]),
        lambda s: s.pop("modelID"),
        lambda s: s["variants"][0]["scaleTargetRef"].update(kind="StatefulSet"),
        lambda s: s["variants"][0].update(maxReplicas="four"),
    ):
        bad = copy.deepcopy(va)
        edit(bad["spec"])
        broken.append(bad)
    check = Rendered(rendered.stack, rendered.config, {**rendered.documents, "broken": broken}, rendered.declared)
    errors = [e for e in validate_rendered(check).errors if e.startswith("broken:")]
    assert len(errors) == len(broken), errors


def test_rbac_lists_exactly_the_verbs_used(rendered_stacks: dict[str, Rendered]) -> None:
    rendered = rendered_stacks["prod"]
    rules = only(rendered, "ClusterRole")["rules"] + only(rendered, "Role")["rules"]
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(key, []), rule
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {
        (api.GROUP, api.PLURAL, "list"),
        (api.GROUP, f"{api.PLURAL}/status", "patch"),
        ("apps", "deployments", "list"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "update"),
        ("", "pods", "list"),
        ("", "events", "create"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("", "configmaps", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "update"),
    }


def test_controller_pods_are_restricted(rendered_stacks: dict[str, Rendered]) -> None:
    rendered = rendered_stacks["prod"]
    deployment = objects(rendered, "Deployment")[api.AUTOSCALER_APP]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] >= 10000
    for c in [*pod["containers"], *pod["initContainers"]]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert ":" in c["image"] and not c["image"].endswith(":latest")
    namespace = next(n for n in objects(rendered, "Namespace").values() if n["metadata"]["name"] == "wva-system")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["PROMETHEUS_URL"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert env["AUTOSCALER_MODE"] == "default" and env["PYTHONPATH"] == "/deps:/app"
    assert env["AUTOSCALER_LOG_FORMAT"] == "text"


def test_prebuilt_image_and_external_prometheus(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["autoscaler"] = {
        "image": "registry.example.com/llm-platform-autoscaler:1.0.0",
        "prometheusUrl": "https://thanos.example.com",
        "prometheusAccess": {"caConfigMap": "thanos-ca", "tokenSecret": "thanos-token"},
        "mode": "wva-v1",
        "dryRun": True,
        "logFormat": "json",
    }
    rendered = render_config(raw)
    assert validate_rendered(rendered).errors == []
    assert f"{api.AUTOSCALER_APP}-code" not in objects(rendered, "ConfigMap")
    pod = objects(rendered, "Deployment")[api.AUTOSCALER_APP]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["PROMETHEUS_URL"] == "https://thanos.example.com/"
    assert env["PROMETHEUS_CA_FILE"] == "/etc/prometheus-ca/ca.crt"
    assert env["PROMETHEUS_TOKEN_FILE"] == "/etc/prometheus-token/token"
    assert env["AUTOSCALER_MODE"] == "wva-v1" and env["AUTOSCALER_DRY_RUN"] == "true"
    assert env["AUTOSCALER_LOG_FORMAT"] == "json"  # read by `python -m autoscaler --log-format`


def test_thresholds_configmap_round_trips_and_overrides_apply(render_config: Render) -> None:
    raw = stack_config("prod")
    model_id = raw["models"][0]["modelID"]
    raw["autoscaler"] = {
        "thresholds": {"kvCacheThreshold": 0.85},
        "overrides": [{"model_id": model_id, "namespace": "llm", "queueLengthThreshold": 8}],
    }
    data = objects(render_config(raw), "ConfigMap")[THRESHOLDS_CONFIGMAP]["data"]
    default, overrides = parse_thresholds_configmap(data)
    assert default.kv_cache_threshold == 0.85
    applied = thresholds_for(model_id, "llm", default, overrides)
    assert applied.queue_length_threshold == 8 and applied.kv_cache_threshold == 0.85
    assert thresholds_for("other", "llm", default, overrides) == default


def test_no_autoscaler_objects_when_disabled(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["autoscaler"] = {"enabled": False}
    rendered = render_config(raw)
    assert "autoscaler" not in rendered.documents


def test_network_policies_allow_only_the_flows_needed(rendered_stacks: dict[str, Rendered]) -> None:
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
        for p in docs(rendered_stacks["prod"], "NetworkPolicy")
    }
    assert policies[("wva-system", "default-deny")] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = policies[("wva-system", api.AUTOSCALER_APP)]
    assert allow["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "ports": [{"protocol": "TCP", "port": api.AUTOSCALER_METRICS_PORT}],
        }
    ]
    assert policies[("llm", "default-deny-ingress")] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    serving = policies[("llm", "allow-model-servers")]
    assert serving["podSelector"] == {"matchLabels": {api.SERVING_LABEL: "true"}}
    assert serving["ingress"] == [{"ports": [{"protocol": "TCP", "port": api.SERVING_PORT}]}]


def autoscaler_egress(rendered: Rendered) -> list[dict[str, Any]]:
    policy = next(p for p in docs(rendered, "NetworkPolicy") if p["metadata"]["name"] == api.AUTOSCALER_APP)
    egress: list[dict[str, Any]] = policy["spec"]["egress"]
    return egress


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


DNS = {
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def test_egress_without_a_prebuilt_image_adds_pypi(rendered_stacks: dict[str, Rendered]) -> None:
    """The API server on 443 (managed control planes) and 6443 (kubeadm), Prometheus, and 443 anywhere for the init
    container's wheels."""
    assert autoscaler_egress(rendered_stacks["prod"]) == [
        DNS,
        {"ports": tcp(443, 6443)},
        {"ports": tcp(9090)},
        {"ports": tcp(443)},
    ]


def test_egress_with_a_prebuilt_image_reaches_only_the_api_server_and_prometheus(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["autoscaler"] = {"image": "ghcr.io/example/llm-platform/autoscaler:v1.0.0"}
    assert autoscaler_egress(render_config(raw)) == [DNS, {"ports": tcp(443, 6443)}, {"ports": tcp(9090)}]
    raw["autoscaler"]["apiServerCidrs"] = ["203.0.113.10/32", "2001:db8::/64"]
    api_server = [{"ipBlock": {"cidr": "203.0.113.10/32"}}, {"ipBlock": {"cidr": "2001:db8::/64"}}]
    assert autoscaler_egress(render_config(raw)) == [
        DNS,
        {"to": api_server, "ports": tcp(443, 6443)},
        {"ports": tcp(9090)},
    ]
    raw["autoscaler"]["apiServerCidrs"] = ["not-a-cidr"]
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert [e.split(":")[0] for e in caught.value.errors] == ["autoscaler.apiServerCidrs[0]"]
