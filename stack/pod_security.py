"""The Pod Security Standards' baseline and restricted controls, checked on every pod template before a cluster
refuses it (https://kubernetes.io/docs/concepts/security/pod-security-standards/, the `latest` version, host probes
included). Python has no maintained implementation of the admission plugin, so this follows the documented controls.

Narrower than the admission plugin: only the `enforce` label of a Namespace the stack renders counts (no
`enforce-version`, no cluster-wide defaults or exemptions from an AdmissionConfiguration; a namespace the stack does
not render, such as kube-system, is taken as privileged); only pods written in the render are seen, not those that
operators create at run time. Stricter: Windows pods get none of the restricted profile's relaxations for them, nor
do pods with `hostUsers: false` where a cluster's feature gate relaxes them.
"""

from collections.abc import Callable, Iterator
from typing import Any

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"

Pod = dict[str, Any]  # {"metadata": ..., "spec": ...} of a pod or a pod template


def pod_template(doc: dict[str, Any]) -> Pod | None:
    """The pod a workload object creates, or None for objects that create none."""
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind == "Pod":
        return {"metadata": doc.get("metadata") or {}, "spec": spec}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"):
        template: Pod | None = spec.get("template")
        return template
    if kind == "CronJob":
        cron_template: Pod | None = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
        return cron_template
    return None


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            yield f"container '{c.get('name')}'", c


def _contexts(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod's security context, then each container's: where the pod and container fields share a control."""
    yield "pod", spec.get("securityContext") or {}
    for where, c in _containers(spec):
        yield where, c.get("securityContext") or {}


def _host_process(pod: Pod) -> list[str]:
    return [w for w, sc in _contexts(pod["spec"]) if (sc.get("windowsOptions") or {}).get("hostProcess")]


def _host_namespaces(pod: Pod) -> list[str]:
    return [f"{f}: true" for f in ("hostNetwork", "hostPID", "hostIPC") if pod["spec"].get(f)]


def _privileged(pod: Pod) -> list[str]:
    return [w for w, c in _containers(pod["spec"]) if (c.get("securityContext") or {}).get("privileged")]


def _added(container: dict[str, Any]) -> list[str]:
    return list(((container.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])


def _capabilities(pod: Pod) -> list[str]:
    return [
        f"{w} adds {cap}" for w, c in _containers(pod["spec"]) for cap in _added(c) if cap not in BASELINE_CAPABILITIES
    ]


def _host_path(pod: Pod) -> list[str]:
    return [f"volume '{v.get('name')}'" for v in pod["spec"].get("volumes") or [] if "hostPath" in v]


def _host_ports(pod: Pod) -> list[str]:
    return [
        f"{w} hostPort {p['hostPort']}"
        for w, c in _containers(pod["spec"])
        for p in c.get("ports") or []
        if p.get("hostPort")
    ]


def _app_armor(pod: Pod) -> list[str]:
    found = [
        f"{w} appArmorProfile {sc['appArmorProfile'].get('type')}"
        for w, sc in _contexts(pod["spec"])
        if (sc.get("appArmorProfile") or {}).get("type", "RuntimeDefault") not in ("RuntimeDefault", "Localhost")
    ]
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return found + [
        f"annotation {k}: {v}"
        for k, v in annotations.items()
        if k.startswith(APPARMOR_ANNOTATION) and v != "runtime/default" and not str(v).startswith("localhost/")
    ]


def _se_linux(pod: Pod) -> list[str]:
    found = []
    for where, sc in _contexts(pod["spec"]):
        options = sc.get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES:
            found.append(f"{where} seLinuxOptions.type {options['type']}")
        found += [f"{where} seLinuxOptions.{f} is set" for f in ("user", "role") if options.get(f)]
    return found


def _proc_mount(pod: Pod) -> list[str]:
    return [
        f"{w} procMount {c['securityContext']['procMount']}"
        for w, c in _containers(pod["spec"])
        if (c.get("securityContext") or {}).get("procMount", "Default") != "Default"
    ]


def _seccomp_type(sc: dict[str, Any]) -> str | None:
    return (sc.get("seccompProfile") or {}).get("type")


def _seccomp_unconfined(pod: Pod) -> list[str]:
    return [f"{w} Unconfined" for w, sc in _contexts(pod["spec"]) if _seccomp_type(sc) == "Unconfined"]


def _sysctls(pod: Pod) -> list[str]:
    sysctls = (pod["spec"].get("securityContext") or {}).get("sysctls") or []
    return [s.get("name") for s in sysctls if s.get("name") not in SAFE_SYSCTLS]


def _host_probes(pod: Pod) -> list[str]:
    """Probes and lifecycle hooks may not name a host: they would reach the node or beyond from the kubelet."""
    found = []
    for where, c in _containers(pod["spec"]):
        handlers = {name: c.get(name) or {} for name in ("livenessProbe", "readinessProbe", "startupProbe")}
        handlers |= {
            f"lifecycle.{name}": (c.get("lifecycle") or {}).get(name) or {} for name in ("postStart", "preStop")
        }
        found += [
            f"{where} {name}.{action}.host {handler[action]['host']}"
            for name, handler in handlers.items()
            for action in ("httpGet", "tcpSocket")
            if (handler.get(action) or {}).get("host")
        ]
    return found


def _volume_types(pod: Pod) -> list[str]:
    found = []
    for v in pod["spec"].get("volumes") or []:
        kinds = sorted(set(v) - {"name"} - RESTRICTED_VOLUMES)
        found += [f"volume '{v.get('name')}' is {k}" for k in kinds]
    return found


def _privilege_escalation(pod: Pod) -> list[str]:
    return [
        w
        for w, c in _containers(pod["spec"])
        if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]


def _run_as_non_root(pod: Pod) -> list[str]:
    """Each container must run as non-root by its own field or, where it does not set one, by the pod's."""
    pod_value = (pod["spec"].get("securityContext") or {}).get("runAsNonRoot")
    found = ["pod runAsNonRoot: false"] if pod_value is False else []
    for where, c in _containers(pod["spec"]):
        value = (c.get("securityContext") or {}).get("runAsNonRoot")
        if (pod_value if value is None else value) is not True:
            found.append(where)
    return found


def _run_as_user(pod: Pod) -> list[str]:
    return [w for w, sc in _contexts(pod["spec"]) if sc.get("runAsUser") == 0]


def _seccomp(pod: Pod) -> list[str]:
    """Each container's profile, its own or the pod's, must be RuntimeDefault or Localhost."""
    pod_type = _seccomp_type(pod["spec"].get("securityContext") or {})
    found = []
    for where, c in _containers(pod["spec"]):
        value = _seccomp_type(c.get("securityContext") or {}) or pod_type
        if value not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where} {value or 'unset'}")
    return found


def _restricted_capabilities(pod: Pod) -> list[str]:
    found = []
    for where, c in _containers(pod["spec"]):
        capabilities = (c.get("securityContext") or {}).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{where} does not drop ALL")
        found += [f"{where} adds {cap}" for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"]
    return found


Control = tuple[str, Callable[[Pod], list[str]]]
BASELINE: tuple[Control, ...] = (
    ("hostProcess", _host_process),
    ("host namespaces", _host_namespaces),
    ("privileged", _privileged),
    ("capabilities", _capabilities),
    ("hostPath volumes", _host_path),
    ("host ports", _host_ports),
    ("AppArmor", _app_armor),
    ("SELinux", _se_linux),
    ("/proc mount type", _proc_mount),
    ("seccomp", _seccomp_unconfined),
    ("sysctls", _sysctls),
    ("host probes and lifecycle hooks", _host_probes),
)
RESTRICTED: tuple[Control, ...] = (
    *BASELINE,
    ("volume types", _volume_types),
    ("allowPrivilegeEscalation != false", _privilege_escalation),
    ("runAsNonRoot != true", _run_as_non_root),
    ("runAsUser = 0", _run_as_user),
    ("seccomp not RuntimeDefault or Localhost", _seccomp),
    ("capabilities (restricted)", _restricted_capabilities),
)


def violations(pod: Pod, level: str) -> list[str]:
    """`<control>: <what breaks it>` for each way the pod breaks the level; none for `privileged`."""
    controls = {"baseline": BASELINE, "restricted": RESTRICTED}.get(level, ())
    return [f"{name}: {hit}" for name, check in controls for hit in check(pod)]


def enforced_levels(documents: list[dict[str, Any]]) -> dict[str, str]:
    """The level each rendered Namespace enforces (a namespace without the label admits everything)."""
    return {
        d["metadata"]["name"]: ((d["metadata"].get("labels") or {}).get(ENFORCE_LABEL) or "privileged")
        for d in documents
        if d.get("kind") == "Namespace" and d.get("apiVersion") == "v1"
    }
