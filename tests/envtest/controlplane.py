"""etcd and kube-apiserver from KUBEBUILDER_ASSETS on loopback, with the flags controller-runtime's envtest uses.

openssl makes one CA for the serving and client certificates, an admin client certificate in system:masters and the
key that signs service-account tokens. RBAC authorizes every request; the ServiceAccount admission plugin is off, as
in envtest, since no controller creates default ServiceAccounts. No kubelet, scheduler or controllers: a test that
needs pods writes them itself.
"""

import json
import os
import ssl
import subprocess
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from stack.render import Rendered
from tests.test_autoscaler_process import free_port, wait_for

ASSETS = os.environ.get("KUBEBUILDER_ASSETS", "")
REQUIRED = bool(os.environ.get("LLM_PLATFORM_REQUIRE_ENVTEST"))  # CI's envtest job: fail instead of skipping
requires_assets = pytest.mark.skipif(
    not ASSETS and not REQUIRED, reason="KUBEBUILDER_ASSETS is not set: `make envtest` downloads the binaries"
)
FIELD_MANAGER = "envtest"
FIRST = ("Namespace", "CustomResourceDefinition")  # applied for real first: the others need them to exist


@dataclass
class ControlPlane:
    url: str
    workdir: Path  # certificates, logs, etcd data
    admin: client.ApiClient  # system:masters, by client certificate

    @property
    def ca(self) -> Path:
        return self.workdir / "ca.crt"

    def kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig for a bearer token, e.g. a ServiceAccount's from the TokenRequest API."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "envtest", "cluster": {"server": self.url, "certificate-authority": str(self.ca)}}
                    ],
                    "users": [{"name": "token", "user": {"token": token}}],
                    "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "token"}}],
                    "current-context": "envtest",
                }
            )
        )
        return path


def _openssl(workdir: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True, timeout=60)


def _certificates(workdir: Path) -> None:
    """ca, apiserver (serves 127.0.0.1 and localhost) and admin (system:masters): .crt and .key; service-account.key."""
    key = ["-newkey", "rsa:2048", "-nodes"]
    ca = ["-subj", "/CN=envtest-ca", "-addext", "keyUsage=critical,keyCertSign", "-keyout", "ca.key", "-out", "ca.crt"]
    _openssl(workdir, "req", "-x509", *key, "-days", "1", *ca)
    _openssl(workdir, "genrsa", "-out", "service-account.key", "2048")
    leaves = {
        "apiserver": ("/CN=kube-apiserver", "serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost"),
        "admin": ("/O=system:masters/CN=admin", "clientAuth"),
    }
    for name, (subject, usage) in leaves.items():
        (workdir / f"{name}.ext").write_text(f"authorityKeyIdentifier=keyid\nextendedKeyUsage={usage}\n")
        _openssl(workdir, "req", "-new", *key, "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.csr")
        sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext"]
        _openssl(workdir, "x509", "-req", "-in", f"{name}.csr", *sign, "-out", f"{name}.crt")


def _command(binary: Path, flags: dict[str, str]) -> list[str]:
    return [str(binary), *(f"--{name}={value}" for name, value in flags.items())]


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """By PID, as started: SIGTERM, then SIGKILL after a bounded wait."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _ready(url: str, context: ssl.SSLContext, processes: dict[Path, subprocess.Popen[bytes]]) -> bool:
    for log, process in processes.items():
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited with {process.returncode}:\n{_tail(log)}")
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def control_plane(workdir: Path) -> Iterator[ControlPlane]:
    if not ASSETS:
        raise FileNotFoundError("KUBEBUILDER_ASSETS is not set: run `make envtest` and export the folder it prints")
    assets = Path(ASSETS)
    _certificates(workdir)
    etcd_url, port = f"http://127.0.0.1:{free_port()}", free_port()
    url = f"https://127.0.0.1:{port}"
    d = str(workdir)
    etcd = _command(
        assets / "etcd",
        {
            "data-dir": f"{d}/etcd",
            "listen-client-urls": etcd_url,
            "advertise-client-urls": etcd_url,
            "listen-peer-urls": f"http://127.0.0.1:{free_port()}",
            "unsafe-no-fsync": "true",
        },
    )
    apiserver = _command(
        assets / "kube-apiserver",
        {
            "etcd-servers": etcd_url,
            "cert-dir": d,
            "bind-address": "127.0.0.1",
            "secure-port": str(port),
            "tls-cert-file": f"{d}/apiserver.crt",
            "tls-private-key-file": f"{d}/apiserver.key",
            "client-ca-file": f"{d}/ca.crt",
            "authorization-mode": "RBAC",
            "service-cluster-ip-range": "10.0.0.0/24",
            "allow-privileged": "true",
            "disable-admission-plugins": "ServiceAccount",
            "service-account-issuer": f"{url}/",
            "service-account-key-file": f"{d}/service-account.key",
            "service-account-signing-key-file": f"{d}/service-account.key",
        },
    )
    processes: dict[Path, subprocess.Popen[bytes]] = {}
    try:
        for command in (etcd, apiserver):
            log = workdir / f"{Path(command[0]).name}.log"
            processes[log] = _start(command, log)
        context = ssl.create_default_context(cafile=workdir / "ca.crt")
        context.load_cert_chain(workdir / "admin.crt", workdir / "admin.key")
        try:
            wait_for(lambda: _ready(url, context, processes), timeout=60)
        except AssertionError:
            raise RuntimeError(f"kube-apiserver not ready in 60 s:\n{_tail(workdir / 'kube-apiserver.log')}") from None
        config = client.Configuration(host=url)
        config.ssl_ca_cert, config.cert_file, config.key_file = (
            str(workdir / f) for f in ("ca.crt", "admin.crt", "admin.key")
        )
        with client.ApiClient(config) as admin:
            yield ControlPlane(url, workdir, admin)
    finally:
        for process in reversed(processes.values()):
            _stop(process)


@dataclass
class Applied:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the API server's Warning headers, Pod Security's included


def apply(plane: ControlPlane, documents: Iterable[dict[str, Any]], dry_run: bool = False) -> Applied:
    """Server-side apply as `kubectl apply --server-side [--dry-run=server]`, unknown fields rejected."""
    dynamic = DynamicClient(plane.admin, cache_file=str(plane.workdir / "discovery.json"))  # a miss rediscovers
    result = Applied()
    for doc in documents:
        where = f"{doc['kind']} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}"
        try:
            resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            response = dynamic.server_side_apply(
                resource,
                body=doc,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
                query_params=[("fieldValidation", "Strict")],
                serialize=False,
            )
        except (ApiException, ResourceNotFoundError) as error:
            result.errors.append(f"{where}: {_message(error)}")
            continue
        result.warnings += [f"{where}: {w}" for w in response.headers.getlist("Warning")]
    return result


def apply_stack(plane: ControlPlane, rendered: Rendered, dry_run: bool) -> Applied:
    """A rendered stack: its Namespaces and CRDs for real (custom resources need their CRD served), then every
    other object, as a server-side dry run or for real. Helm releases are not Kubernetes objects and stay out."""
    objects = [d for docs in rendered.documents.values() for d in docs if d["apiVersion"] != "helm.sh/v3"]
    first = [d for d in objects if d["kind"] in FIRST]
    result = apply(plane, first)
    extensions = client.ApiextensionsV1Api(plane.admin)
    for crd in (d for d in first if d["kind"] == "CustomResourceDefinition"):
        wait_for(lambda name=crd["metadata"]["name"]: _established(extensions, name), timeout=30)
    rest = apply(plane, [d for d in objects if d["kind"] not in FIRST], dry_run)
    return Applied(result.errors + rest.errors, result.warnings + rest.warnings)


def _message(error: Exception) -> str:
    """The API server's own message from its Status body, else the client's."""
    try:
        return str(json.loads(getattr(error, "body", "") or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(error)


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = extensions.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)
