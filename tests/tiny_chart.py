"""A small Helm chart written by the tests (never a copy of an upstream chart): a Widget CRD and a Widget, a
Deployment that mounts a host path on request, a `helm test` Pod, a v1 List, NOTES.txt, and a `sidecar`
dependency packaged under `charts/` as Helm packages dependencies."""

import io
import tarfile
from pathlib import Path

import yaml

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}, "op": {"type": "string"}},
                            }
                        },
                    }
                },
            }
        ],
    },
}

RESTRICTED = (
    "{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]},"
    " runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}"
)
TEMPLATES = {
    # `op: =` is the bare `=` that PyYAML's YAML 1.1 value tag refuses (as in the Prometheus Operator CRDs).
    "widget.yaml": """apiVersion: example.com/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}-widget
spec:
  size: {{ required "size is required" .Values.size }}
  op: =
""",
    "deployment.yaml": f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ .Release.Name }}}}-server
spec:
  selector: {{matchLabels: {{app: server}}}}
  template:
    metadata: {{labels: {{app: server}}}}
    spec:
      containers:
        - name: server
          image: example.com/server:1.0
          securityContext: {RESTRICTED}
          {{{{- if .Values.hostLogs }}}}
          volumeMounts: [{{name: logs, mountPath: /logs}}]
      volumes:
        - name: logs
          hostPath: {{path: /var/log/server}}
          {{{{- end }}}}
""",
    "reader.yaml": """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Name }}-reader
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
""",
    "test-connection.yaml": """apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations: {"helm.sh/hook": test}
spec:
  hostNetwork: true
  containers: [{name: test, image: example.com/test:1.0}]
""",
    "settings.yaml": """apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: "{{ .Release.Name }}-settings"}, data: {mode: fast}}
""",
    "NOTES.txt": "Installed {{ .Release.Name }}.\n",
}
SIDECAR_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-sidecar
data:
  greeting: {{ .Values.greeting | quote }}
"""


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sidecar_archive() -> bytes:
    return _archive(
        {
            "sidecar/Chart.yaml": b"apiVersion: v2\nname: sidecar\nversion: 0.1.0\n",
            "sidecar/values.yaml": b"greeting: hello\n",
            "sidecar/templates/configmap.yaml": SIDECAR_TEMPLATE.encode(),
        }
    )


def write_archive(path: Path, name: str = "widgets", version: str = "1.0.0", with_dependency: bool = True) -> Path:
    """The chart as a `.tgz` at `path`; `with_dependency=False` declares `sidecar` without packaging it."""
    chart = {
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "dependencies": [{"name": "sidecar", "version": "0.1.0", "repository": "https://charts.example.com"}],
    }
    files = {
        f"{name}/Chart.yaml": yaml.safe_dump(chart).encode(),
        f"{name}/values.yaml": b"size: 3\nhostLogs: false\n",
        f"{name}/crds/widgets.yaml": yaml.safe_dump(WIDGET_CRD).encode(),
        **{f"{name}/templates/{file}": text.encode() for file, text in TEMPLATES.items()},
    }
    if with_dependency:
        files[f"{name}/charts/sidecar-0.1.0.tgz"] = sidecar_archive()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_archive(files))
    return path
