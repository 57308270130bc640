"""Model storage: JuiceFS on a Redis-protocol metadata engine and an S3-compatible store, one RWX claim per
model namespace, and a loader that puts each model's weights in it.

Model servers mount the claim `volume.MODELS_CLAIM` in their namespace and serve from `volume.weights_path(model_id)`
inside it, after `ModelStorage.serving_dependencies`.
"""

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.args import GPU_TOLERATION
from components.kube import RESTRICTED_CONTAINER, deny_ingress, helm_release, labels, manifest, namespace
from components.model_serving.args import ModelArgs
from components.model_storage.args import CacheArgs, ModelStorageArgs, RedisArgs
from components.model_storage.backends import (
    CLIENT_LABEL,
    Backend,
    S3Keys,
    juicefs_clients,
    minio,
    s3_keys,
    seaweedfs,
)
from components.model_storage.backends import valkey as valkey_server
from components.model_storage.loader import ModelLoader, job, script_config_map
from components.model_storage.volume import MODELS_CLAIM, weights_path
from components.pins import JUICEFS_CSI, JUICEFS_MOUNT_IMAGE, PYTHON_IMAGE

STORAGE_CLASS = "juicefs-sc"
VOLUME_NAME = "llm-models"  # the JuiceFS file system's name
VOLUME_SECRET = "juicefs-volume"
CSI_NAMESPACE = "kube-system"  # the CSI driver's priority classes are reserved to kube-system on many clusters
FORMAT_SCRIPT = "juicefs_format.py"
FORMAT_CONFIG_MAP = "juicefs-format-script"


def volume_settings(
    args: ModelStorageArgs, metaurl: pulumi.Output[str], bucket: pulumi.Output[str], keys: S3Keys
) -> pulumi.Output[dict[str, str]]:
    """The JuiceFS Secret's keys, read by the CSI driver and, as files, by the format Job."""
    store = args.object_store
    envs = json.dumps({"AWS_REGION": store.region}) if store.region else None

    def settings(values: list[str]) -> dict[str, str]:
        found = {
            "name": VOLUME_NAME,
            "metaurl": values[0],
            "storage": "minio" if store.kind == "minio" else "s3",
            "bucket": values[1],
            "access-key": values[2],
            "secret-key": values[3],
        }
        return {**found, "envs": envs} if envs else found

    return pulumi.Output.secret(pulumi.Output.all(metaurl, bucket, keys.access_key, keys.secret_key).apply(settings))


def mount_options(cache: CacheArgs) -> list[str]:
    """For large files read once per node and rarely written: a big local cache, a read buffer and prefetch."""
    return [
        f"cache-dir={cache.dir}",
        f"cache-size={cache.size_mib}",
        f"buffer-size={cache.buffer_size_mib}",
        f"prefetch={cache.prefetch}",
        "open-cache=3600",  # weights do not change under a running server; saves a metadata call per open
    ]


def csi_values(cache: CacheArgs) -> dict[str, Any]:
    """The driver's pods and its mount pods tolerate GPU taints (mounts hang otherwise) and may reach the servers."""
    client = {CLIENT_LABEL: "true"}
    tolerations = [{"key": "CriticalAddonsOnly", "operator": "Exists"}, GPU_TOLERATION.model_dump(exclude_none=True)]
    return {
        "defaultMountImage": {"ce": JUICEFS_MOUNT_IMAGE},
        "node": {"tolerations": tolerations, "labels": client},
        "controller": {"labels": client},  # its provisioner mounts the volume to create each claim's folder
        "globalConfig": {"mountPodPatch": [{"labels": client, "mountOptions": mount_options(cache)}]},
        "dashboard": {"enabled": False},  # it shows the volume's credentials and has no login by default
    }


class ModelStorage(pulumi.ComponentResource):
    """The storage namespace (metadata engine, object store, volume Secret, format Job), the JuiceFS CSI driver,
    the StorageClass, and per model namespace the claim and the loader Jobs of its models."""

    def __init__(
        self,
        name: str,
        args: ModelStorageArgs,
        models: list[ModelArgs],
        model_namespaces: dict[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-platform:model_storage:ModelStorage", name, None, opts)
        self.namespace = namespace(f"{name}-namespace", args.namespace, "model-storage", "baseline", self._opts())
        ns = self.namespace.metadata.name
        in_ns = self._opts(self.namespace)
        clients = juicefs_clients([CSI_NAMESPACE, args.namespace])
        deny_ingress(f"{name}-deny-ingress", ns, in_ns)
        metadata = self._metadata(name, args.redis, ns, clients, in_ns)
        keys, store = self._object_store(name, args, ns, clients, in_ns)
        bucket = pulumi.Output.concat(store.url, "/", args.object_store.bucket)
        self.volume_secret = k8s.core.v1.Secret(
            f"{name}-volume",
            metadata=manifest({"name": VOLUME_SECRET, "namespace": ns, "labels": labels("model-storage")}),
            string_data=volume_settings(args, metadata.url, bucket, keys),
            opts=in_ns,
        )
        self.format_job = self._format_job(name, args, ns, [*metadata.ready, *store.ready, self.volume_secret])
        self.csi = helm_release(
            f"{name}-csi", JUICEFS_CSI, CSI_NAMESPACE, csi_values(args.cache), self._opts(self.format_job)
        )
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-storage-class",
            metadata=manifest({"name": STORAGE_CLASS, "labels": labels("model-storage")}),
            provisioner="csi.juicefs.com",
            parameters={
                f"csi.storage.k8s.io/{use}-secret-{field}": value
                for use in ("provisioner", "node-publish")
                for field, value in (("name", VOLUME_SECRET), ("namespace", args.namespace))
            },
            reclaim_policy="Retain",  # weights outlive a deleted claim
            allow_volume_expansion=True,
            volume_binding_mode="Immediate",
            opts=self._opts(self.csi),
        )
        self.claims = {
            model_ns: self._claim(f"{name}-{model_ns}", args, ns_name) for model_ns, ns_name in model_namespaces.items()
        }
        self.serving_dependencies: list[pulumi.Resource] = list(self.claims.values())
        for model_ns, ns_name in model_namespaces.items():
            here = [m for m in models if m.namespace == model_ns]
            paths = {m.name: weights_path(m.model_id) for m in here}
            loader_opts = self._opts(self.claims[model_ns])
            ModelLoader(f"{name}-{model_ns}-loader", args.loader, args.models, here, ns_name, paths, loader_opts)
        self.register_outputs({"namespace": ns, "storageClass": STORAGE_CLASS, "claim": MODELS_CLAIM})

    def _opts(self, *after: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=list(after))

    @staticmethod
    def _metadata(
        name: str, redis: RedisArgs, ns: pulumi.Output[str], clients: list[dict[str, Any]], opts: pulumi.ResourceOptions
    ) -> Backend:
        if redis.kind == "valkey":
            return valkey_server(f"{name}-valkey", ns, redis.memory_mib, redis.storage_size, clients, opts)
        url = str(redis.url)
        if redis.password is None:
            return Backend(pulumi.Output.from_input(url), [])
        secret = redis.password.get_secret_value()
        return Backend(pulumi.Output.secret(url.replace("://", f"://:{secret}@", 1)), [])

    @staticmethod
    def _object_store(
        name: str,
        args: ModelStorageArgs,
        ns: pulumi.Output[str],
        clients: list[dict[str, Any]],
        opts: pulumi.ResourceOptions,
    ) -> tuple[S3Keys, Backend]:
        store = args.object_store
        size = store.storage_size or args.volume_size
        if store.kind == "external":
            assert store.access_key is not None and store.secret_key is not None  # checked by the args model
            keys = S3Keys(
                pulumi.Output.secret(store.access_key.get_secret_value()),
                pulumi.Output.secret(store.secret_key.get_secret_value()),
            )
            return keys, Backend(pulumi.Output.from_input(str(store.endpoint).rstrip("/")), [])
        keys = s3_keys(f"{name}-s3", opts)
        build = seaweedfs if store.kind == "seaweedfs" else minio
        return keys, build(f"{name}-{store.kind}", ns, keys, size, clients, opts)

    def _format_job(
        self, name: str, args: ModelStorageArgs, ns: pulumi.Output[str], after: list[pulumi.Resource]
    ) -> k8s.batch.v1.Job:
        """Awaited: the CSI driver (whose mount pods would each try to format) starts only once this succeeded."""
        scripts = script_config_map(
            f"{name}-format-script", FORMAT_CONFIG_MAP, ns, FORMAT_SCRIPT, self._opts(self.namespace)
        )
        command = [
            "python",
            f"/scripts/{FORMAT_SCRIPT}",
            "--settings",
            "/etc/juicefs",
            "--juicefs",
            "/opt/juicefs/juicefs",
        ]
        command += ["--region", args.object_store.region or "us-east-1"]
        command += [] if args.object_store.kind == "external" else ["--create-bucket"]
        copy_binary = {
            "name": "juicefs-binary",
            "image": JUICEFS_MOUNT_IMAGE,
            "command": ["sh", "-c", 'cp "$(command -v juicefs)" /opt/juicefs/juicefs'],
            "securityContext": RESTRICTED_CONTAINER,
            "volumeMounts": [{"name": "bin", "mountPath": "/opt/juicefs"}],
        }
        container = {
            "name": "format",
            "image": PYTHON_IMAGE,
            "command": command,
            "env": [{"name": "HOME", "value": "/tmp"}],
            "securityContext": RESTRICTED_CONTAINER,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
            "volumeMounts": [
                {"name": "settings", "mountPath": "/etc/juicefs", "readOnly": True},
                {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
                {"name": "bin", "mountPath": "/opt/juicefs"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        volumes = [
            {"name": "settings", "secret": {"secretName": VOLUME_SECRET}},
            {"name": "scripts", "configMap": {"name": FORMAT_CONFIG_MAP}},
            {"name": "bin", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ]
        return job(
            f"{name}-format",
            "juicefs-format",
            ns,
            {CLIENT_LABEL: "true"},
            [copy_binary],
            container,
            volumes,
            {},
            self._opts(scripts, *after),
        )

    def _claim(
        self, resource_name: str, args: ModelStorageArgs, ns: pulumi.Input[str]
    ) -> k8s.core.v1.PersistentVolumeClaim:
        return k8s.core.v1.PersistentVolumeClaim(
            resource_name,
            metadata=manifest({"name": MODELS_CLAIM, "namespace": ns, "labels": labels("model-storage")}),
            spec=manifest(
                {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": args.volume_size}},
                }
            ),
            opts=self._opts(self.storage_class, self.format_job),
        )
