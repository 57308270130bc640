"""Each Helm release expanded offline into the objects its pinned chart installs, so that validation, Pod Security
and the manifest scan see chart output as they see ours.

Charts come from the chart cache (`python -m stack.charts`) and are rendered with the PyPI Helm SDK
(`helm-python-sdk`): no network, no helm binary. That SDK is Helm 4's engine while Pulumi's helm.v3.Release installs
with Helm 3, and it renders with its own default capabilities (Kubernetes v1.36.0), not the stack's version.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml

from stack.charts import archive_path

HOOK = "helm.sh/hook"
# Built-in kinds that live outside namespaces; Helm installs every other object into the release's namespace.
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IPAddress",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "ServiceCIDR",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)


class ExpansionError(Exception):
    """A cached chart did not render with the release's values; the message names the release and the chart."""


class _ChartLoader(yaml.CSafeLoader):
    """YAML 1.1 without its `value` tag: the Prometheus Operator CRDs hold a bare `=`, which is just a string."""


_ChartLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class Expansion:
    documents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by `<component>.<release>`
    not_cached: list[str] = field(default_factory=list)  # `<chart> <version>` of releases left unexpanded


def parse(text: str, source: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.load_all(text, Loader=_ChartLoader) if d is not None]
    if not all(isinstance(d, dict) for d in docs):
        raise ExpansionError(f"{source}: a document is not a mapping")
    return docs


def expand(documents: dict[str, list[dict[str, Any]]], cache: Path) -> Expansion:
    """Every Release document whose chart is cached, expanded; the others listed."""
    found = Expansion()
    for component, docs in sorted(documents.items()):
        for release in docs:
            if release.get("apiVersion") != "helm.sh/v3":
                continue
            spec = release["spec"]
            archive = archive_path(cache, spec["chart"], spec["version"])
            if not archive.is_file():
                found.not_cached.append(f"{spec['chart']} {spec['version']}")
                continue
            try:
                objects = release_objects(archive, release)
            except helm_python.HelmError as error:
                where = f"{component}: Release {release['metadata']['name']}: chart {spec['chart']} {spec['version']}"
                raise ExpansionError(f"{where}: {error}") from None
            found.documents[f"{component}.{release['metadata']['name']}"] = objects
    return found


def release_objects(archive: Path, release: dict[str, Any]) -> list[dict[str, Any]]:
    """What installing the release creates: the chart's CRDs, then its rendered templates and install hooks."""
    name, namespace = release["metadata"]["name"], release["metadata"]["namespace"]
    with helm_python.Chart.load(archive) as chart:
        crds = [d for c in chart.crds for d in parse(c["data"], c["filename"])]
        manifests = chart.render(release["spec"].get("values") or {}, name=name, namespace=namespace, is_install=True)
    objects = [
        item
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in parse(text, path)
        for item in _items(doc)
    ]
    cluster_kinds = CLUSTER_SCOPED | {c["spec"]["names"]["kind"] for c in crds if c["spec"].get("scope") == "Cluster"}
    return crds + [_in_namespace(d, namespace, cluster_kinds) for d in objects if not _test_hook(d)]


def _items(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A `v1` List is installed as its items (Helm's resource builder flattens it)."""
    if doc.get("apiVersion") == "v1" and doc.get("kind") == "List":
        return list(doc.get("items") or [])
    return [doc]


def _test_hook(doc: dict[str, Any]) -> bool:
    """`helm test` objects: an install never creates them."""
    hooks = ((doc.get("metadata") or {}).get("annotations") or {}).get(HOOK, "")
    return bool(hooks) and all(h.strip().startswith("test") for h in hooks.split(","))


def _in_namespace(doc: dict[str, Any], namespace: str, cluster_kinds: frozenset[str]) -> dict[str, Any]:
    """A namespaced object as installed: in the release's namespace unless its template names another."""
    metadata = doc.get("metadata") or {}
    if doc.get("kind") in cluster_kinds or metadata.get("namespace"):
        return doc
    return {**doc, "metadata": {**metadata, "namespace": namespace}}
