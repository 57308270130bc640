"""Weights into the volume: per model an idempotent loader Job, and optionally a warmup on every GPU node.

Both run `scripts/model_loader.py` (shipped in a ConfigMap) on a plain Python image, with the model namespace's
weights claim mounted; they reach the volume through the JuiceFS mount pod, never the servers behind it.
"""

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.args import GPU_TOLERATION
from components.kube import PINNED_BY_TAG, RESTRICTED_CONTAINER, checkov_skips, labels, manifest, restricted_pod
from components.model_serving.args import ModelArgs
from components.model_storage.args import LoaderArgs, ModelWeightsArgs
from components.model_storage.volume import MODELS_CLAIM, MODELS_MOUNT, WEIGHTS_UID
from components.pins import PYTHON_IMAGE

SCRIPTS = Path(__file__).parent / "scripts"
LOADER_SCRIPT = "model_loader.py"
LOADER_CONFIG_MAP = "model-loader"
HF_TOKEN_SECRET = "hf-token"
# How long warmup pods wait for the loader Job to finish a download.
WARMUP_WAIT_SECONDS = 6 * 3600


def script_config_map(
    resource_name: str, name: str, namespace: pulumi.Input[str], script: str, opts: pulumi.ResourceOptions
) -> k8s.core.v1.ConfigMap:
    """A script of `scripts/` as the file a Job runs: the tests run the very same file."""
    return k8s.core.v1.ConfigMap(
        resource_name,
        metadata=manifest({"name": name, "namespace": namespace, "labels": labels("model-storage")}),
        data={script: (SCRIPTS / script).read_text()},
        opts=opts,
    )


def pod_spec(
    init: list[dict[str, Any]], container: dict[str, Any], volumes: list[dict[str, Any]], restart: str
) -> dict[str, Any]:
    """Pod Security `restricted`; a claim on JuiceFS is never chowned recursively (it holds hundreds of GB)."""
    small = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    return {
        "restartPolicy": restart,
        "automountServiceAccountToken": False,
        "securityContext": {**restricted_pod(WEIGHTS_UID), "fsGroupChangePolicy": "OnRootMismatch"},
        "initContainers": [{"resources": small, "imagePullPolicy": "Always", **c} for c in init],
        "containers": [{"securityContext": RESTRICTED_CONTAINER, "imagePullPolicy": "Always", **container}],
        "volumes": volumes,
    }


def job(
    resource_name: str,
    name: str,
    namespace: pulumi.Input[str],
    pod_labels: dict[str, str],
    init: list[dict[str, Any]],
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    annotations: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """A Job that retries a few times and is kept after it ends, so that its log stays readable."""
    annotations = {**annotations, **checkov_skips(PINNED_BY_TAG)}
    meta = {"name": name, "namespace": namespace, "labels": labels("model-storage"), "annotations": annotations}
    return k8s.batch.v1.Job(
        resource_name,
        metadata=manifest(meta),
        spec=manifest(
            {
                "backoffLimit": 4,
                "template": {
                    "metadata": {"labels": labels("model-storage", pod_labels)},
                    "spec": pod_spec(init, container, volumes, "Never"),
                },
            }
        ),
        opts=opts,
    )


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "models", "persistentVolumeClaim": {"claimName": MODELS_CLAIM}},
        {"name": "scripts", "configMap": {"name": LOADER_CONFIG_MAP}},
        {"name": "tmp", "emptyDir": {}},
    ]


def _mounts(read_only: bool) -> list[dict[str, Any]]:
    return [
        {"name": "models", "mountPath": MODELS_MOUNT, "readOnly": read_only},
        {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


class ModelLoader(pulumi.ComponentResource):
    """The loader Jobs and warmup DaemonSets of the models of one namespace, and what they share there."""

    def __init__(
        self,
        name: str,
        args: LoaderArgs,
        overrides: list[ModelWeightsArgs],
        models: list[ModelArgs],
        namespace: pulumi.Input[str],
        paths: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-platform:model_storage:ModelLoader", name, None, opts)
        by_name = {o.name: o for o in overrides}
        # A model whose variants all run the GPU-free simulator reads no weights.
        served = [m for m in models if any(v.uses_gpus for v in m.variants)]
        loads = [m for m in served if not _pick(by_name, m.name, "skip_download", args.skip_download)]
        warms = [m for m in served if _pick(by_name, m.name, "warmup", args.warmup)]
        child = pulumi.ResourceOptions(parent=self)
        shared: list[pulumi.Resource] = []
        if loads or warms:
            shared.append(script_config_map(f"{name}-script", LOADER_CONFIG_MAP, namespace, LOADER_SCRIPT, child))
        if loads and args.hf_token is not None:
            token = pulumi.Output.secret(args.hf_token.get_secret_value())
            meta = {"name": HF_TOKEN_SECRET, "namespace": namespace, "labels": labels("model-storage")}
            shared.append(
                k8s.core.v1.Secret(
                    f"{name}-hf-token", metadata=manifest(meta), string_data={"token": token}, opts=child
                )
            )
        after = pulumi.ResourceOptions(parent=self, depends_on=shared)
        self.jobs = {
            m.name: self._load(name, args, by_name.get(m.name), m, namespace, paths[m.name], after) for m in loads
        }
        for m in warms:
            self._warm(name, m, namespace, paths[m.name], m in loads, after)
        self.register_outputs({"jobs": [j.metadata.name for j in self.jobs.values()]})

    @staticmethod
    def _load(
        name: str,
        args: LoaderArgs,
        override: ModelWeightsArgs | None,
        model: ModelArgs,
        namespace: pulumi.Input[str],
        path: str,
        opts: pulumi.ResourceOptions,
    ) -> k8s.batch.v1.Job:
        """Not awaited: a 70B download takes longer than `pulumi up` should; `kubectl logs job/...` follows it."""
        include = (override.include if override and override.include else None) or args.include
        command = ["python", f"/scripts/{LOADER_SCRIPT}", "download", "--repo", model.model_id]
        command += ["--revision", override.revision if override else "main", "--dest", f"{MODELS_MOUNT}/{path}"]
        command += [part for pattern in include for part in ("--include", pattern)]
        env: list[dict[str, Any]] = [
            {"name": "HF_ENDPOINT", "value": str(args.hf_endpoint).rstrip("/")},
            {"name": "HOME", "value": "/tmp"},
        ]
        if args.hf_token is not None:
            env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": "token"}}})
        container = {
            "name": "loader",
            "image": PYTHON_IMAGE,
            "command": command,
            "env": env,
            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
            "volumeMounts": _mounts(read_only=False),
        }
        return job(
            f"{name}-{model.name}",
            f"load-{model.name}",
            namespace,
            {"app.kubernetes.io/name": f"load-{model.name}"},
            [],
            container,
            _volumes(),
            {"pulumi.com/skipAwait": "true"},
            opts,
        )

    @staticmethod
    def _warm(
        name: str,
        model: ModelArgs,
        namespace: pulumi.Input[str],
        path: str,
        after_load: bool,
        opts: pulumi.ResourceOptions,
    ) -> None:
        """On every GPU node: read the weights once (after the download), then idle holding the mount."""
        wait = ["--wait-seconds", str(WARMUP_WAIT_SECONDS)] if after_load else []
        small = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
        warm = {
            "name": "warm",
            "image": PYTHON_IMAGE,
            "command": ["python", f"/scripts/{LOADER_SCRIPT}", "warm", "--dest", f"{MODELS_MOUNT}/{path}", *wait],
            "securityContext": RESTRICTED_CONTAINER,
            "resources": small,
            "volumeMounts": _mounts(read_only=True),
        }
        idle = {
            "name": "idle",
            "image": PYTHON_IMAGE,
            "command": ["python", "-c", "import signal; signal.pause()"],
            "resources": small,
            "volumeMounts": _mounts(read_only=True),
        }
        selector = {"app.kubernetes.io/name": f"warm-{model.name}"}
        spec = pod_spec([warm], idle, _volumes(), "Always")
        spec["nodeSelector"] = {"nvidia.com/gpu.present": "true"}
        spec["tolerations"] = [GPU_TOLERATION.model_dump(exclude_none=True)]
        k8s.apps.v1.DaemonSet(
            f"{name}-{model.name}-warmup",
            metadata=manifest(
                {"name": f"warm-{model.name}", "namespace": namespace, "labels": labels("model-storage")}
            ),
            spec=manifest(
                {
                    "selector": {"matchLabels": selector},
                    "template": {"metadata": {"labels": labels("model-storage", selector)}, "spec": spec},
                }
            ),
            opts=opts,
        )


def _pick(overrides: dict[str, ModelWeightsArgs], model: str, field: str, default: bool) -> bool:
    value = getattr(overrides[model], field) if model in overrides else None
    return default if value is None else bool(value)
