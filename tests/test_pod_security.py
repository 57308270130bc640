"""The Pod Security Standards' controls, one pod per way to break them (cases from the standard's own tables)."""

import copy
from typing import Any

import pytest

from stack.pod_security import pod_template, violations

RESTRICTED_CONTAINER = {
    "name": "app",
    "image": "example.com/app:1",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def pod(spec: dict[str, Any] | None = None, container: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    """A restricted pod, with `spec` merged over its spec and `container` over its one container's security."""
    app = copy.deepcopy(RESTRICTED_CONTAINER)
    app["securityContext"].update(container or {})
    return {"metadata": metadata, "spec": {"containers": [app], **(spec or {})}}


BASELINE_CASES = [
    (pod(container={"windowsOptions": {"hostProcess": True}}), "hostProcess: container 'app'"),
    (pod({"hostNetwork": True}), "host namespaces: hostNetwork: true"),
    (pod({"hostPID": True}), "host namespaces: hostPID: true"),
    (pod(container={"privileged": True}), "privileged: container 'app'"),
    (
        pod(container={"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}),
        "capabilities: container 'app' adds SYS_ADMIN",
    ),
    (pod({"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}), "hostPath volumes: volume 'host'"),
    (
        pod({"containers": [{**RESTRICTED_CONTAINER, "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
        "host ports: container 'app' hostPort 80",
    ),
    (
        pod(container={"appArmorProfile": {"type": "Unconfined"}}),
        "AppArmor: container 'app' appArmorProfile Unconfined",
    ),
    (
        pod(annotations={"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}),
        "AppArmor: annotation container.apparmor.security.beta.kubernetes.io/app: unconfined",
    ),
    (pod(container={"seLinuxOptions": {"type": "spc_t"}}), "SELinux: container 'app' seLinuxOptions.type spc_t"),
    (pod(container={"seLinuxOptions": {"user": "root"}}), "SELinux: container 'app' seLinuxOptions.user is set"),
    (pod(container={"procMount": "Unmasked"}), "/proc mount type: container 'app' procMount Unmasked"),
    (pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}), "seccomp: pod Unconfined"),
    (pod({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}), "sysctls: kernel.msgmax"),
    (
        pod({"containers": [{**RESTRICTED_CONTAINER, "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]}),
        "host probes and lifecycle hooks: container 'app' livenessProbe.httpGet.host 10.0.0.1",
    ),
    (
        pod(
            {
                "containers": [
                    {**RESTRICTED_CONTAINER, "lifecycle": {"preStop": {"tcpSocket": {"host": "x", "port": 1}}}}
                ]
            }
        ),
        "host probes and lifecycle hooks: container 'app' lifecycle.preStop.tcpSocket.host x",
    ),
]


@pytest.mark.parametrize(("bad", "message"), BASELINE_CASES)
def test_baseline_controls_name_what_breaks_them(bad: dict[str, Any], message: str) -> None:
    assert message in violations(bad, "baseline")
    assert message in violations(bad, "restricted")
    assert violations(bad, "privileged") == []


RESTRICTED_CASES = [
    (pod({"volumes": [{"name": "nfs", "nfs": {"server": "x", "path": "/"}}]}), "volume types: volume 'nfs' is nfs"),
    (pod(container={"allowPrivilegeEscalation": True}), "allowPrivilegeEscalation != false: container 'app'"),
    (pod(container={"runAsNonRoot": False}), "runAsNonRoot != true: container 'app'"),
    (pod(container={"runAsUser": 0}), "runAsUser = 0: container 'app'"),
    (pod(container={"seccompProfile": None}), "seccomp not RuntimeDefault or Localhost: container 'app' unset"),
    (
        pod(container={"capabilities": {"drop": ["NET_RAW"]}}),
        "capabilities (restricted): container 'app' does not drop ALL",
    ),
    (
        pod(container={"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}),
        "capabilities (restricted): container 'app' adds CHOWN",
    ),
]


@pytest.mark.parametrize(("bad", "message"), RESTRICTED_CASES)
def test_restricted_controls_name_what_breaks_them_and_baseline_admits_it(bad: dict[str, Any], message: str) -> None:
    assert message in violations(bad, "restricted")
    assert violations(bad, "baseline") == []


def test_a_restricted_pod_passes_and_pod_level_settings_count_for_its_containers() -> None:
    assert violations(pod(), "restricted") == []
    inherited = pod(
        {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}},
        {"runAsNonRoot": None, "seccompProfile": None},
    )
    assert violations(inherited, "restricted") == []
    init = pod({"initContainers": [{"name": "init", "image": "x", "securityContext": {"privileged": True}}]})
    assert "privileged: container 'init'" in violations(init, "baseline")


@pytest.mark.parametrize(
    ("doc", "has_pod"),
    [
        ({"kind": "Deployment", "spec": {"template": pod()}}, True),
        ({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": pod()}}}}, True),
        ({"kind": "Pod", "metadata": {}, "spec": pod()["spec"]}, True),
        ({"kind": "Service", "spec": {}}, False),
    ],
)
def test_every_workload_kind_yields_its_pod_template(doc: dict[str, Any], has_pod: bool) -> None:
    found = pod_template(doc)
    assert (found is not None) == has_pod
    if found is not None:
        assert found["spec"]["containers"][0]["name"] == "app"
