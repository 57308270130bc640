"""The servers behind JuiceFS: Valkey for metadata, SeaweedFS (or a frozen MinIO) for data blocks, or external ones.

Each in-cluster server answers only JuiceFS clients (see `juicefs_clients`); credentials come from pulumi-random
and stay secret Outputs.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kube import (
    PINNED_BY_TAG,
    RESTRICTED_CONTAINER,
    checkov_skips,
    helm_release,
    labels,
    manifest,
    network_policy,
    resources,
    restricted_pod,
)
from components.pins import MINIO_IMAGE, SEAWEEDFS, SEAWEEDFS_TAG, VALKEY_IMAGE

# Pods allowed to reach the metadata engine and the object store carry this label: the CSI driver's pods and the
# mount pods it starts (labelled through the chart values), and the format Job.
CLIENT_LABEL = "llm-platform.io/juicefs-client"
VALKEY_PORT = 6379
SEAWEEDFS_UID = 1000  # the `seaweed` user of the image (its Dockerfile); the chart runs weed without the entrypoint
VALKEY_UID = 10999  # a high UID of our own: the image runs as any user, and fsGroup opens the data volume to it
DATA_DIR = "/data"
AUTH_CONF = "/etc/valkey/auth/auth.conf"  # `requirepass`, from the Secret; valkey.conf includes it
METADATA_DB = 1  # one database number per JuiceFS volume
SEAWEEDFS_S3_PORT = 8333
MINIO_PORT = 9000


@dataclass(frozen=True)
class Backend:
    """What JuiceFS needs to reach one server, and the resources that must be ready before it does."""

    url: pulumi.Output[str]  # secret when it holds a password
    ready: list[pulumi.Resource]


def juicefs_clients(client_namespaces: list[str]) -> list[dict[str, Any]]:
    """NetworkPolicy peers: labelled pods in the namespaces where JuiceFS clients run, and nowhere else."""
    return [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}},
        }
        for ns in client_namespaces
    ]


def password(resource_name: str, length: int, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """Letters and digits only: the value goes into URLs and S3 signatures unescaped."""
    generated = random.RandomPassword(resource_name, length=length, special=False, opts=opts)
    return pulumi.Output.secret(generated.result)


def valkey_conf(memory_mib: int) -> str:
    """The server's settings: persistence both ways, and no eviction (JuiceFS loses files if a key is evicted)."""
    return "\n".join(
        [
            f"port {VALKEY_PORT}",
            "bind 0.0.0.0",
            f"dir {DATA_DIR}",
            "appendonly yes",
            "appendfsync everysec",
            "save 900 1 300 10 60 10000",
            "maxmemory-policy noeviction",
            # Writes fail cleanly before the container's memory limit kills the server.
            f"maxmemory {memory_mib * 3 // 4}mb",
            f"include {AUTH_CONF}",
            "",
        ]
    )


def _server(
    name: str,
    app: str,
    namespace: pulumi.Input[str],
    container: dict[str, Any],
    pod: dict[str, Any],
    storage_size: str,
    port: int,
    clients: list[dict[str, Any]],
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """One replica with its data on a PVC, a Service in front, and ingress from JuiceFS clients only."""
    selector = {"app.kubernetes.io/name": app}
    meta = {"name": app, "namespace": namespace, "labels": labels("model-storage", selector)}
    workload = k8s.apps.v1.StatefulSet(
        f"{name}-statefulset",
        metadata=manifest({**meta, "annotations": checkov_skips(PINNED_BY_TAG)}),
        spec=manifest(
            {
                "serviceName": app,
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels("model-storage", selector)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        **pod,
                        "containers": [
                            {
                                "securityContext": RESTRICTED_CONTAINER,
                                "ports": [{"name": app, "containerPort": port, "protocol": "TCP"}],
                                "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, *container.pop("mounts")],
                                **container,
                            }
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": storage_size}},
                        },
                    }
                ],
            }
        ),
        opts=opts,
    )
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata=manifest(meta),
        spec=manifest({"selector": selector, "ports": [{"name": app, "port": port, "targetPort": app}]}),
        opts=opts,
    )
    network_policy(
        f"{name}-clients-only",
        namespace,
        f"{app}-from-juicefs-clients",
        {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": clients, "ports": [{"protocol": "TCP", "port": port}]}],
        },
        opts,
    )
    return [workload, service]


def valkey(
    name: str,
    namespace: pulumi.Input[str],
    memory_mib: int,
    storage_size: str,
    clients: list[dict[str, Any]],
    opts: pulumi.ResourceOptions,
) -> Backend:
    """Valkey on a PVC; its URL is the JuiceFS metadata URL, password included (secret)."""
    secret_value = password(f"{name}-password", 32, opts)
    meta = {"namespace": namespace, "labels": labels("model-storage")}
    config = k8s.core.v1.ConfigMap(
        f"{name}-config",
        metadata=manifest({"name": "valkey", **meta}),
        data={"valkey.conf": valkey_conf(memory_mib)},
        opts=opts,
    )
    auth = k8s.core.v1.Secret(
        f"{name}-auth",
        metadata=manifest({"name": "valkey-auth", **meta}),
        string_data=secret_value.apply(lambda p: {"password": p, "auth.conf": f"requirepass {p}\n"}),
        opts=opts,
    )
    ping = 'valkey-cli --no-auth-warning -a "$(cat /etc/valkey/auth/password)" ping | grep -q PONG'
    memory = f"{memory_mib}Mi"
    container = {
        "name": "valkey",
        "image": VALKEY_IMAGE,
        "command": ["valkey-server", "/etc/valkey/valkey.conf"],
        "imagePullPolicy": "Always",
        "resources": {"requests": {"cpu": "100m", "memory": memory}, "limits": {"cpu": "2", "memory": memory}},
        "readinessProbe": {"exec": {"command": ["sh", "-c", ping]}, "periodSeconds": 10, "timeoutSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": VALKEY_PORT}, "periodSeconds": 20, "failureThreshold": 6},
        "mounts": [
            {"name": "config", "mountPath": "/etc/valkey/valkey.conf", "subPath": "valkey.conf", "readOnly": True},
            {"name": "auth", "mountPath": "/etc/valkey/auth", "readOnly": True},
        ],
    }
    pod = {
        "securityContext": restricted_pod(VALKEY_UID),
        "volumes": [
            {"name": "config", "configMap": {"name": "valkey"}},
            {
                "name": "auth",
                "secret": {
                    "secretName": "valkey-auth",
                    "items": [{"key": "auth.conf", "path": "auth.conf"}, {"key": "password", "path": "password"}],
                },
            },
        ],
    }
    ready = _server(name, "valkey", namespace, container, pod, storage_size, VALKEY_PORT, clients, opts)
    url = pulumi.Output.all(namespace, secret_value).apply(
        lambda a: f"redis://:{a[1]}@valkey.{a[0]}.svc:{VALKEY_PORT}/{METADATA_DB}"
    )
    return Backend(pulumi.Output.secret(url), [config, auth, *ready])


@dataclass(frozen=True)
class S3Keys:
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]


def s3_keys(name: str, opts: pulumi.ResourceOptions) -> S3Keys:
    return S3Keys(password(f"{name}-access-key", 24, opts), password(f"{name}-secret-key", 40, opts))


def seaweedfs_identities(access_key: str, secret_key: str) -> str:
    """The S3 gateway's identities file: one identity, the JuiceFS clients', with full rights on its buckets."""
    identity = {
        "name": "juicefs",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]}, indent=1)


def seaweedfs_pods(cpu: tuple[str, str], memory: tuple[str, str]) -> dict[str, Any]:
    """One SeaweedFS server's pods, with (request, limit) of CPU and memory. The chart applies a security context
    only with `enabled`: the image's own `seaweed` user (its volumes group-owned), the runtime's seccomp profile, no
    privileges. The root filesystem stays writable: that weed never writes outside its volumes is not verified."""
    container = {key: value for key, value in RESTRICTED_CONTAINER.items() if key != "readOnlyRootFilesystem"}
    return {
        "podSecurityContext": {"enabled": True, **restricted_pod(SEAWEEDFS_UID)},
        "containerSecurityContext": {"enabled": True, **container},
        "resources": resources(cpu, memory),
    }


def seaweedfs_values(config_secret: str, size: str, clients: list[dict[str, Any]]) -> dict[str, Any]:
    """Master, volume and filer on PVCs, S3 with auth. The namespace is Pod Security baseline, which refuses
    hostPath volumes: every log volume the chart defaults to a hostPath (master, filer, S3 gateway) is an emptyDir."""
    small_pvc = {"type": "persistentVolumeClaim", "size": "2Gi"}
    logs = {"type": "emptyDir"}
    data = [{"name": "data1", "type": "persistentVolumeClaim", "size": size, "maxVolumes": 0}]
    s3 = {"enabled": True, "enableAuth": True, "existingConfigSecret": config_secret, "logs": logs}
    return {
        "image": {"tag": SEAWEEDFS_TAG},
        "master": {"data": small_pvc, "logs": logs, **seaweedfs_pods(("100m", "1"), ("256Mi", "1Gi"))},
        "volume": {"dataDirs": data, **seaweedfs_pods(("500m", "4"), ("1Gi", "4Gi"))},
        "filer": {
            "data": {"type": "persistentVolumeClaim", "size": "10Gi"},
            "logs": logs,
            **seaweedfs_pods(("250m", "2"), ("512Mi", "2Gi")),
        },
        "s3": {**s3, **seaweedfs_pods(("250m", "2"), ("512Mi", "2Gi"))},
        # The chart's policies admit its own pods; JuiceFS clients are added to reach the S3 port only.
        "networkPolicy": {
            "enabled": True,
            "extraIngress": [{"from": clients, "ports": [{"protocol": "TCP", "port": SEAWEEDFS_S3_PORT}]}],
        },
    }


def key_secret(
    resource_name: str,
    name: str,
    namespace: pulumi.Input[str],
    keys: S3Keys,
    data: Callable[[str, str], dict[str, str]],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """A Secret holding the S3 keys in the form one server reads them (secret, like the keys)."""
    return k8s.core.v1.Secret(
        resource_name,
        metadata=manifest({"name": name, "namespace": namespace, "labels": labels("model-storage")}),
        string_data=pulumi.Output.all(keys.access_key, keys.secret_key).apply(lambda k: data(k[0], k[1])),
        opts=opts,
    )


def seaweedfs(
    name: str,
    namespace: pulumi.Input[str],
    keys: S3Keys,
    size: str,
    clients: list[dict[str, Any]],
    opts: pulumi.ResourceOptions,
) -> Backend:
    """The maintained default: SeaweedFS from its own chart, S3 gateway with our keys."""
    config = key_secret(
        f"{name}-s3-config",
        "seaweedfs-s3-config",
        namespace,
        keys,
        lambda access, secret: {"seaweedfs_s3_config": seaweedfs_identities(access, secret)},
        opts,
    )
    release = helm_release(
        f"{name}-release",
        SEAWEEDFS,
        namespace,
        seaweedfs_values("seaweedfs-s3-config", size, clients),
        pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[config])),
    )
    endpoint = pulumi.Output.concat("http://", SEAWEEDFS.release, "-s3.", namespace, f".svc:{SEAWEEDFS_S3_PORT}")
    return Backend(endpoint, [config, release])


def minio(
    name: str,
    namespace: pulumi.Input[str],
    keys: S3Keys,
    size: str,
    clients: list[dict[str, Any]],
    opts: pulumi.ResourceOptions,
) -> Backend:
    """MinIO on request only: its community edition is archived, this is its last frozen image (no fixes)."""
    root = key_secret(
        f"{name}-root",
        "minio-root",
        namespace,
        keys,
        lambda access, secret: {"MINIO_ROOT_USER": access, "MINIO_ROOT_PASSWORD": secret},
        opts,
    )
    health = {"port": MINIO_PORT, "path": "/minio/health/ready"}
    container = {
        "name": "minio",
        "image": MINIO_IMAGE,
        "args": ["server", "/data", "--address", f":{MINIO_PORT}"],
        "envFrom": [{"secretRef": {"name": "minio-root"}}],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        "readinessProbe": {"httpGet": health, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {**health, "path": "/minio/health/live"}, "periodSeconds": 20},
        "mounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {"securityContext": restricted_pod(10001), "volumes": [{"name": "tmp", "emptyDir": {}}]}
    ready = _server(name, "minio", namespace, container, pod, size, MINIO_PORT, clients, opts)
    endpoint = pulumi.Output.concat("http://minio.", namespace, f".svc:{MINIO_PORT}")
    return Backend(endpoint, [root, *ready])
