"""The monitoring component: its config, and the objects and chart values a working monitoring stack needs."""

from typing import Any

import pytest
import yaml
from pulumi.runtime import rpc

from autoscaler.api import SERVING_LABEL, SERVING_PORT_NAME, serving_labels
from components.monitoring.component import DASHBOARD_LABEL, GRAFANA_ADMIN_SECRET
from components.monitoring.scraping import pod_label_meta
from stack.config import ConfigError, parse_stack_config
from stack.render import Rendered
from tests.conftest import Render, chart_values_dir, stack_config


def docs(rendered: Rendered) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in rendered.documents["monitoring"]}


def values_of(rendered: Rendered) -> dict[str, Any]:
    return dict(docs(rendered)[("Release", "kube-prometheus-stack")]["spec"]["values"])


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    return caught.value.errors


@pytest.mark.parametrize(
    ("monitoring", "error"),
    [
        ({"kvCacheAlertThreshold": 1.5}, "monitoring.kvCacheAlertThreshold: must be less than or equal to 1 (got 1.5)"),
        ({"defaultTtftSloSeconds": 0}, "monitoring.defaultTtftSloSeconds: must be greater than 0 (got 0)"),
        ({"grafanaa": False}, "monitoring.grafanaa: unknown key; did you mean 'grafana'?"),
        ({"storageSize": "lots"}, "monitoring.storageSize: must be a Kubernetes quantity such as 100Gi (got 'lots')"),
    ],
)
def test_invalid_monitoring_config_names_the_key(monitoring: dict[str, Any], error: str) -> None:
    raw = stack_config("dev")
    raw["monitoring"] = monitoring
    assert errors_of(raw) == [error]


def test_namespace_is_privileged_for_node_exporter(rendered_stacks: dict[str, Rendered]) -> None:
    labels = docs(rendered_stacks["prod"])[("Namespace", "monitoring")]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_prometheus_keeps_the_configured_history_and_selects_every_releases_monitors(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["monitoring"] = {**raw["monitoring"], "storageClass": "fast-ssd", "scrapeInterval": "30s"}
    spec = values_of(render_config(raw))["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d" and spec["scrapeInterval"] == "30s" and spec["evaluationInterval"] == "30s"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == "200Gi" and claim["storageClassName"] == "fast-ssd"
    for kind in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False


def test_model_servers_are_scraped_in_the_models_namespaces_with_model_and_variant(render_config: Render) -> None:
    raw = stack_config("dev")
    raw["models"].append(
        {
            **raw["models"][0],
            "name": "other",
            "namespace": "team",
            "variants": [{**raw["models"][0]["variants"][0], "name": "other-l40s"}],
        }
    )
    monitors = {m["name"]: m for m in values_of(render_config(raw))["prometheus"]["additionalPodMonitors"]}
    servers = monitors["llm-model-servers"]
    assert servers["namespaceSelector"] == {"matchNames": ["llm", "team"]}
    # The selector matches the labels the model-server pods carry.
    assert servers["selector"]["matchLabels"].items() <= serving_labels("other", "other-l40s").items()
    assert servers["selector"]["matchLabels"] == {SERVING_LABEL: "true"}
    endpoint = servers["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == (SERVING_PORT_NAME, "/metrics")
    copied = {r["targetLabel"]: r.get("sourceLabels") for r in endpoint["relabelings"]}
    assert copied["model"] == [pod_label_meta("llm-d.ai/model")]
    assert copied["variant"] == [pod_label_meta("llm-platform.io/variant")]
    assert monitors["llm-platform-autoscaler"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_rules_carry_each_models_prices_and_ttft_objective(render_config: Render) -> None:
    raw = stack_config("dev")
    raw["monitoring"] = {"defaultTtftSloSeconds": 1.5}
    raw["models"].append(
        {
            **raw["models"][0],
            "name": "fast",
            "slo": {"ttftSeconds": 0.4},
            "variants": [{**raw["models"][0]["variants"][0], "name": "fast-l40s", "cost": 7.5}],
        }
    )
    groups = values_of(render_config(raw))["additionalPrometheusRulesMap"]["llm-platform"]["groups"]
    config = {g["name"]: g for g in groups}["llm-platform.config"]["rules"]
    slo = {r["labels"]["model"]: r["expr"] for r in config if r["record"].endswith("ttft_slo_seconds:config")}
    assert slo == {"llama-70b": "vector(1.5)", "fast": "vector(0.4)"}
    prices = {r["labels"]["variant"]: r["expr"] for r in config if "cost" in r["record"]}
    assert prices["fast-l40s"] == "vector(7.5)" and prices["llama-70b-l40s"] == "vector(5)"


def test_grafana_password_is_generated_secret_and_given_to_the_chart(rendered_stacks: dict[str, Rendered]) -> None:
    rendered = rendered_stacks["dev"]
    admin = values_of(rendered)["grafana"]["admin"]
    secret = docs(rendered)[("Secret", GRAFANA_ADMIN_SECRET)]
    assert admin["existingSecret"] == GRAFANA_ADMIN_SECRET
    assert set(secret["stringData"]) == {admin["userKey"], admin["passwordKey"]}
    declared = {d.name: d for d in rendered.declared}
    assert rpc.is_rpc_secret(declared["monitoring-grafana-admin"].inputs["stringData"])
    assert declared["monitoring-grafana-password"].inputs["length"] >= 24


def test_dashboards_are_labelled_for_the_chart_sidecar_and_dcgm_is_provisioned_by_id(
    rendered_stacks: dict[str, Rendered],
) -> None:
    rendered = rendered_stacks["dev"]
    sidecar = values_of(rendered)["grafana"]["sidecar"]["dashboards"]
    charts = chart_values_dir()
    if charts is not None:
        defaults = yaml.safe_load((charts / "kube-prometheus-stack" / "values.yaml").read_text())
        chart_sidecar = defaults["grafana"]["sidecar"]["dashboards"]
        assert (chart_sidecar["label"], chart_sidecar["labelValue"]) == (sidecar["label"], sidecar["labelValue"])
    boards = [d for (kind, _), d in docs(rendered).items() if kind == "ConfigMap"]
    assert {b["metadata"]["labels"][DASHBOARD_LABEL] for b in boards} == {sidecar["labelValue"]}
    assert sorted(name for b in boards for name in b["data"]) == ["llm-platform-vllm.json", "llm-platform.json"]
    grafana = values_of(rendered)["grafana"]
    provider = grafana["dashboardProviders"]["dashboardproviders.yaml"]["providers"][0]
    dcgm = grafana["dashboards"][provider["name"]]["nvidia-dcgm-exporter"]
    assert (dcgm["gnetId"], dcgm["datasource"]) == (12239, "Prometheus")


def test_without_grafana_no_password_and_no_dashboards(render_config: Render) -> None:
    raw = stack_config("dev")
    raw["monitoring"] = {"grafana": False}
    rendered = render_config(raw)
    assert values_of(rendered)["grafana"] == {"enabled": False}
    assert {kind for kind, _ in docs(rendered)} == {"Namespace", "NetworkPolicy", "Release"}
    assert not [d for d in rendered.declared if d.name.startswith("monitoring-grafana")]


def test_monitoring_namespace_admits_only_the_needed_flows(rendered_stacks: dict[str, Any]) -> None:
    found = [d for group in rendered_stacks["prod"].documents.values() for d in group if d["kind"] == "NetworkPolicy"]
    policies = {d["metadata"]["name"]: d["spec"] for d in found if d["metadata"]["namespace"] == "monitoring"}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    rules = policies["allow-monitoring-flows"]["ingress"]
    assert {"from": [{"podSelector": {}}]} in rules
    assert {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "wva-system"}}}],
        "ports": [{"protocol": "TCP", "port": 9090}],
    } in rules
    assert all("from" in r or {p["port"] for p in r["ports"]} == {3000, 10250} for r in rules)
