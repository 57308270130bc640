"""Helm releases expanded from the chart cache: chart output is validated (custom resources against the chart's
CRDs), checked for Pod Security and written beside our objects; without the cache the render says what it skipped."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.charts import CACHE_ENV, archive_path, pinned_charts
from stack.config import parse_stack_config
from stack.expansion import ExpansionError, expand
from stack.pod_security import ENFORCE_LABEL
from stack.render import Rendered, main, validate_rendered
from tests.conftest import stack_config
from tests.tiny_chart import write_archive


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(path))
    return path


def release(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "helm.sh/v3",
        "kind": "Release",
        "metadata": {"name": "rel", "namespace": "apps"},
        "spec": {"chart": "widgets", "version": "1.0.0", "repositoryOpts": {"repo": "https://x"}, "values": values},
    }


def namespace(level: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": {ENFORCE_LABEL: level}}}


def validated(cache: Path, values: dict[str, Any], level: str = "baseline") -> list[str]:
    """Validation errors of a stack holding one namespace at `level` and the tiny chart's release in it."""
    write_archive(archive_path(cache, "widgets", "1.0.0"))
    ours = {"demo": [namespace(level), release(values)]}
    documents = {**ours, **expand(ours, cache).documents}
    return validate_rendered(Rendered("t", parse_stack_config(stack_config("dev")), documents, [])).errors


def test_a_release_expands_into_its_chart_crds_templates_and_packaged_dependency(cache: Path) -> None:
    write_archive(archive_path(cache, "widgets", "1.0.0"))
    expansion = expand({"demo": [namespace("baseline"), release({"sidecar": {"greeting": "hi"}})]}, cache)
    assert expansion.not_cached == []
    objects = {(d["kind"], d["metadata"]["name"]): d for d in expansion.documents["demo.rel"]}
    assert set(objects) == {
        ("CustomResourceDefinition", "widgets.example.com"),
        ("Widget", "rel-widget"),
        ("Deployment", "rel-server"),
        ("ClusterRole", "rel-reader"),
        ("ConfigMap", "rel-sidecar"),  # from the dependency packaged under charts/, with our values for it
        ("ConfigMap", "rel-settings"),  # the item of a List
    }, "NOTES.txt and the `helm test` pod are not installed"
    assert objects[("ConfigMap", "rel-sidecar")]["data"] == {"greeting": "hi"}
    assert objects[("ConfigMap", "rel-sidecar")]["metadata"]["namespace"] == "apps"
    assert "namespace" not in objects[("ClusterRole", "rel-reader")]["metadata"]
    assert objects[("Widget", "rel-widget")]["spec"] == {"size": 3, "op": "="}


def test_custom_resources_of_a_chart_are_validated_against_its_crd(cache: Path) -> None:
    assert validated(cache, {"size": 3}) == []
    assert validated(cache, {"size": "three"}) == [
        "demo.rel: Widget rel-widget: spec.size: 'three' is not of type 'integer'"
    ]


def test_a_host_path_in_a_baseline_namespace_fails_naming_the_object_and_the_volume(cache: Path) -> None:
    assert validated(cache, {"hostLogs": True}) == [
        "demo.rel: Deployment rel-server: Pod Security baseline: hostPath volumes: volume 'logs'"
    ]
    assert validated(cache, {"hostLogs": True}, level="privileged") == []


def test_a_chart_that_does_not_render_fails_naming_the_release_and_the_chart(cache: Path) -> None:
    write_archive(archive_path(cache, "widgets", "1.0.0"))
    with pytest.raises(ExpansionError, match=r"demo: Release rel: chart widgets 1\.0\.0: .*size is required"):
        expand({"demo": [release({"size": None})]}, cache)


def cache_pinned(cache: Path, skip: str = "") -> None:
    """A stand-in (the tiny chart) for every pinned chart but `skip`."""
    for chart in pinned_charts():
        if chart.chart != skip:
            write_archive(archive_path(cache, chart.chart, chart.version), chart.chart, chart.version)


def test_render_writes_every_cached_release_expanded_beside_our_objects(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_pinned(cache)
    assert main(["prod", "--out", str(tmp_path / "out"), "--expand-charts"]) == 0
    assert "charts not expanded" not in capsys.readouterr().out
    files = {p.name: list(yaml.safe_load_all(p.read_text())) for p in (tmp_path / "out").glob("*.yaml")}
    assert [d["kind"] for d in files["gpu-operator.yaml"]] == ["Namespace", "Release"]
    for component, chart in [
        ("gpu-operator", "gpu-operator"),
        ("monitoring", "kube-prometheus-stack"),
        ("model-storage", "juicefs-csi-driver"),
        ("model-storage", "seaweedfs"),
    ]:
        deployment = next(d for d in files[f"{component}.{chart}.yaml"] if d["kind"] == "Deployment")
        assert deployment["metadata"]["name"] == f"{chart}-server"


def test_without_the_cache_the_render_names_the_charts_it_did_not_expand_and_succeeds(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prod", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "charts not expanded (not in the chart cache; `make charts`)" in out
    assert all(f"{c.chart} {c.version}" in out for c in pinned_charts())
    assert sorted(p.name for p in (tmp_path / "out").glob("*.*.yaml")) == []


def test_expand_charts_with_a_chart_missing_exits_3_naming_it_and_make_charts(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_pinned(cache, skip="kube-prometheus-stack")
    assert main(["prod", "--out", str(tmp_path / "out"), "--expand-charts"]) == 3
    err = capsys.readouterr().err
    assert "kube-prometheus-stack 88.5.3" in err and "run `make charts`" in err
    assert "gpu-operator" not in err
    assert not (tmp_path / "out").exists()
