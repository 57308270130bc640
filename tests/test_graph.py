"""The resource graph every stack declares: one explicit provider, parenting, names, pinned charts."""

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components import pins
from stack.mocks import Declared
from stack.render import HELM_RELEASE, Rendered
from tests.conftest import Render, chart_values_dir, stack_config

PROVIDER_TYPE = "pulumi:providers:kubernetes"


def all_stacks(rendered_stacks: dict[str, Rendered], render_config: Render) -> list[Rendered]:
    """The shipped stacks plus one with every optional GPU Operator setting on."""
    raw = stack_config("prod")
    raw["gpuOperator"] = {"driver": "preinstalled", "timeSlicing": {"replicas": 4}, "migStrategy": "mixed"}
    return [*rendered_stacks.values(), render_config(raw, "full")]


@pytest.fixture
def stacks(rendered_stacks: dict[str, Rendered], render_config: Render) -> list[Rendered]:
    return all_stacks(rendered_stacks, render_config)


def test_every_kubernetes_resource_uses_the_one_explicit_provider(stacks: list[Rendered]) -> None:
    for rendered in stacks:
        providers = [d for d in rendered.declared if d.type == PROVIDER_TYPE]
        assert len(providers) == 1
        explicit = f"{providers[0].urn}::{providers[0].name}-id"
        for d in rendered.declared:
            if d.custom and d.type.startswith("kubernetes:"):
                assert d.provider == explicit, d.urn


def test_every_resource_is_parented_by_a_component_and_named_after_it(stacks: list[Rendered]) -> None:
    for rendered in stacks:
        by_urn = {d.urn: d for d in rendered.declared}
        for d in rendered.declared:
            if d.type == PROVIDER_TYPE:
                continue
            if not d.custom:
                assert d.type.startswith("llm-platform:"), d.type
                continue
            parent = by_urn[d.parent]
            assert not parent.custom and parent.type.startswith("llm-platform:"), d.urn
            assert d.name.startswith(f"{parent.name}-"), d.urn


def test_names_are_unique(stacks: list[Rendered]) -> None:
    for rendered in stacks:
        names = Counter(d.name for d in rendered.declared)
        assert [n for n, count in names.items() if count > 1] == []
        objects = Counter(
            (doc["apiVersion"], doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
            for docs in rendered.documents.values()
            for doc in docs
        )
        assert [o for o, count in objects.items() if count > 1] == []


def releases(rendered: Rendered) -> list[Declared]:
    return [d for d in rendered.declared if d.type == HELM_RELEASE]


def test_helm_releases_are_pinned_with_fixed_names(stacks: list[Rendered]) -> None:
    pinned = {c.chart: c for c in vars(pins).values() if isinstance(c, pins.HelmChart)}
    for rendered in stacks:
        for release in releases(rendered):
            chart = pinned[release.inputs["chart"]]
            assert release.inputs["version"] == chart.version
            assert release.inputs["name"] == chart.release
            assert release.inputs["repositoryOpts"] == {"repo": chart.repo}


# Values of charts that a pinned chart bundles, whose defaults are not in the reference file of the parent:
# kube-prometheus-stack passes `grafana.*` to the Grafana chart (12.11.1: dashboard providers, dashboards by id, the
# resources of Grafana, its sidecars and its dashboard download), and the resources to kube-state-metrics (8.4.0) and
# prometheus-node-exporter (4.56.1); each path is in that chart's own values.yaml.
SUBCHART_PATHS = {
    "kube-prometheus-stack": {
        "grafana.dashboardProviders",
        "grafana.dashboards",
        "grafana.resources",
        "grafana.sidecar.resources",
        "grafana.downloadDashboards",
        "kube-state-metrics.resources",
        "prometheus-node-exporter.resources",
    },
    # The GPU Operator passes `node-feature-discovery.*` to NFD 0.19.0 (its values: node-feature-discovery.values.yaml).
    "gpu-operator": {f"node-feature-discovery.{part}.podSecurityContext" for part in ("master", "worker", "gc")},
}


def missing_value_paths(values: Any, defaults: Any, path: str = "") -> list[str]:
    """Paths we set that the chart does not define. An empty map or a list in the defaults is free-form."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    missing = []
    for key, value in values.items():
        if key not in defaults:
            missing.append(f"{path}{key}")
        else:
            missing += missing_value_paths(value, defaults[key], f"{path}{key}.")
    return missing


@pytest.fixture
def chart_defaults() -> Callable[[Declared], Any]:
    """The pinned chart's default values of a release (the test is skipped where they are not at hand)."""
    charts = chart_values_dir()
    if charts is None:
        pytest.skip("chart default values not found: set LLM_PLATFORM_CHART_VALUES")
    return lambda release: yaml.safe_load((charts / release.inputs["chart"] / "values.yaml").read_text())


def test_every_helm_value_path_exists_in_the_pinned_chart(
    stacks: list[Rendered], chart_defaults: Callable[[Declared], Any]
) -> None:
    checked = 0
    for rendered in stacks:
        for release in releases(rendered):
            defaults = chart_defaults(release)
            missing = missing_value_paths(release.inputs["values"], defaults)
            assert set(missing) <= SUBCHART_PATHS.get(release.inputs["chart"], set()), release.urn
            checked += 1
    assert checked >= 2


def test_value_path_check_catches_a_misspelt_key() -> None:
    defaults = {"dcgmExporter": {"serviceMonitor": {"enabled": True, "additionalLabels": {}}}}
    assert (
        missing_value_paths({"dcgmExporter": {"serviceMonitor": {"additionalLabels": {"release": "x"}}}}, defaults)
        == []
    )
    assert missing_value_paths({"dcgmExporter": {"servicemonitor": {"enabled": True}}}, defaults) == [
        "dcgmExporter.servicemonitor"
    ]


def merged(values: Any, defaults: Any) -> Any:
    """What the chart sees: our values over its defaults (maps merge, everything else replaces)."""
    if not isinstance(values, dict) or not isinstance(defaults, dict):
        return values
    return {key: merged(values.get(key), defaults.get(key)) if key in values else defaults[key] for key in defaults} | {
        key: value for key, value in values.items() if key not in defaults
    }


def host_path_volumes(values: Any, path: str = "") -> list[str]:
    """Value paths of the chart volumes that would become hostPath volumes (`type: hostPath`)."""
    if isinstance(values, list):
        return [hit for i, item in enumerate(values) for hit in host_path_volumes(item, f"{path}[{i}]")]
    if not isinstance(values, dict):
        return []
    here = [path.rstrip(".")] if values.get("type") == "hostPath" else []
    return here + [hit for key, value in values.items() for hit in host_path_volumes(value, f"{path}{key}.")]


def enforced_levels(rendered: Rendered) -> dict[str, str]:
    return {
        doc["metadata"]["name"]: doc["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce", "")
        for docs in rendered.documents.values()
        for doc in docs
        if doc["kind"] == "Namespace"
    }


def test_no_chart_component_mounts_a_host_path_in_a_namespace_that_refuses_it(
    stacks: list[Rendered], chart_defaults: Callable[[Declared], Any]
) -> None:
    """Pod Security baseline refuses hostPath volumes: a chart default left on would keep its pods from starting."""
    checked = 0
    for rendered in stacks:
        levels = enforced_levels(rendered)
        for release in releases(rendered):
            if levels.get(release.inputs["namespace"]) not in ("baseline", "restricted"):
                continue
            values = merged(release.inputs["values"], chart_defaults(release))
            enabled = {k: v for k, v in values.items() if isinstance(v, dict) and v.get("enabled") is True}
            assert host_path_volumes(enabled) == [], release.urn
            checked += 1
    assert checked >= 2


def test_host_path_check_finds_a_chart_default_left_on() -> None:
    defaults = {"s3": {"enabled": False, "logs": {"type": "hostPath"}}, "master": {"enabled": True, "logs": {}}}
    values = merged({"s3": {"enabled": True}, "master": {"logs": {"type": "emptyDir"}}}, defaults)
    assert host_path_volumes({k: v for k, v in values.items() if v.get("enabled")}) == ["s3.logs"]
