"""checkov findings on chart output that the chart's values cannot fix, each with its reason: the one list of them.

Our own objects carry their skips as annotations; a chart's objects are not ours to annotate. Objects are
checkov's `Kind.namespace.name` (cluster-scoped ones in `default`), as fnmatch patterns. Read from the pinned
charts built from their sources (gpu-operator v26.7.0, juicefs-csi-driver 0.32.4, seaweedfs 4.44.0,
kube-prometheus-stack 88.5.3 with grafana 12.11.1, kube-state-metrics 8.4.0, prometheus-node-exporter 4.56.1).
"""

from dataclasses import dataclass
from fnmatch import fnmatchcase

RESOURCES = ("CKV_K8S_10", "CKV_K8S_11", "CKV_K8S_12", "CKV_K8S_13")
PROBES = ("CKV_K8S_8", "CKV_K8S_9")
# Privileges, capabilities, root, seccomp, read-only root filesystem, security contexts, UID.
CONTAINMENT = (
    "CKV_K8S_16",
    "CKV_K8S_20",
    "CKV_K8S_22",
    "CKV_K8S_23",
    "CKV_K8S_25",
    "CKV_K8S_28",
    "CKV_K8S_29",
    "CKV_K8S_30",
    "CKV_K8S_31",
    "CKV_K8S_37",
    "CKV_K8S_39",
    "CKV_K8S_40",
)


@dataclass(frozen=True)
class Accepted:
    checks: tuple[str, ...]
    objects: tuple[str, ...]
    reason: str

    def covers(self, check: str, resource: str) -> bool:
        return check in self.checks and any(fnmatchcase(resource, pattern) for pattern in self.objects)


ACCEPTED: tuple[Accepted, ...] = (
    Accepted(
        ("CKV_K8S_15", "CKV_K8S_43"),
        ("*",),
        "chart images are pinned by the tags of the pinned chart version (components/pins.py); the charts take "
        "no digests for most of them, and IfNotPresent pulls a pinned tag once per node",
    ),
    Accepted(
        ("CKV_K8S_38",),
        (
            "Deployment.*.gpu-operator",
            "*.*.gpu-operator-node-feature-discovery-*",
            "Job.*.gpu-operator-upgrade-crd",
            "Job.*.gpu-operator-cleanup-gpucluster",
            "*.kube-system.juicefs-csi-*",
            "Deployment.*.kube-prometheus-stack-operator",
            "Deployment.*.kube-prometheus-stack-kube-state-metrics",
            "Deployment.*.kube-prometheus-stack-grafana",
            "Job.*.kube-prometheus-stack-admission-*",
        ),
        "operators, controllers, the CSI driver, Grafana's dashboard sidecars and the charts' CRD and webhook "
        "Jobs call the Kubernetes API with their service account token",
    ),
    Accepted(
        ("CKV_K8S_22", "CKV_K8S_38", "CKV_K8S_40"),
        ("*.*.seaweedfs-*",),
        "SeaweedFS runs as its image's own user (uid 1000) with a writable root filesystem (that weed writes only "
        "to its volumes is not verified); its servers share the chart's service account, which has no per-pod "
        "switch for the token",
    ),
    Accepted(
        (*CONTAINMENT, *PROBES, *RESOURCES),
        ("*.kube-system.juicefs-csi-node", "*.kube-system.juicefs-csi-controller"),
        "a CSI driver mounts FUSE file systems for pods and must run privileged as root; the chart takes no "
        "resources or probes for its sidecar containers",
    ),
    Accepted(
        CONTAINMENT,
        ("Deployment.*.gpu-operator",),
        "the GPU Operator chart takes only resources for the operator's container, no security context",
    ),
    Accepted(
        (*CONTAINMENT, *RESOURCES),
        ("Job.*.gpu-operator-upgrade-crd", "Job.*.gpu-operator-cleanup-gpucluster"),
        "the GPU Operator chart's CRD upgrade and cleanup hook Jobs take no resources or security context",
    ),
    Accepted(
        ("CKV_K8S_11", "CKV_K8S_29", "CKV_K8S_31", "CKV_K8S_40"),
        ("*.*.gpu-operator-node-feature-discovery-*",),
        "Node Feature Discovery runs as its image's non-root user with the subchart's requests and memory "
        "limits and no CPU limit; its prune Job takes no security context",
    ),
    Accepted(
        ("CKV_K8S_17", "CKV_K8S_19", "CKV_K8S_20", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_37"),
        ("DaemonSet.*.kube-prometheus-stack-prometheus-node-exporter",),
        "node-exporter reads the host's processes and network from the host's namespaces",
    ),
    Accepted(
        ("CKV_K8S_155", "CKV_K8S_49", "CKV2_K8S_5"),
        (
            "ClusterRole.default.kube-prometheus-stack-admission",
            "ClusterRole.default.kube-prometheus-stack-operator",
            "ClusterRoleBinding.default.kube-prometheus-stack-grafana-clusterrolebinding",
            "RoleBinding.*.kube-prometheus-stack-admission",
        ),
        "the Prometheus Operator manages every object of its CRDs, its admission Jobs patch the webhook "
        "configurations and keep the webhook's certificate Secret; Grafana's sidecars read ConfigMaps and Secrets "
        "in every namespace for dashboards and datasources",
    ),
    Accepted(
        (*PROBES, "CKV_K8S_22", "CKV_K8S_35", "CKV_K8S_40"),
        ("Deployment.*.kube-prometheus-stack-grafana",),
        "Grafana's sidecars have no probes; Grafana and its sidecars read their credentials from environment "
        "variables and run as the chart's uid 472 with a writable root filesystem (that they write only to their "
        "volumes is not verified)",
    ),
    Accepted(
        ("CKV_K8S_40",),
        ("Job.*.kube-prometheus-stack-admission-*",),
        "the webhook certificate Jobs run as the chart's uid 2000",
    ),
)


def accepted(check: str, resource: str) -> Accepted | None:
    return next((a for a in ACCEPTED if a.covers(check, resource)), None)
