"""Model storage under mocks: pinned charts, GPU-tolerant CSI, secrets never in plain text, client-only policies,
config errors by key path; and the loader script against a local stand-in for the Hugging Face file API."""

import os
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc

from components.model_storage.backends import CLIENT_LABEL
from components.model_storage.volume import MODELS_CLAIM, weights_path
from stack.config import ConfigError, parse_stack_config
from stack.render import Rendered
from tests.conftest import Render, stack_config
from tests.integration.storage_servers import hub, run_script

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def storage(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in rendered.documents["model-storage"]}


def test_prod_storage_objects(rendered_stacks: dict[str, Rendered]) -> None:
    docs = storage(rendered_stacks["prod"])
    csi = docs["Release/juicefs-csi-driver"]["spec"]
    assert (csi["chart"], csi["version"]) == ("juicefs-csi-driver", "0.32.4")
    assert GPU_TOLERATION in csi["values"]["node"]["tolerations"]
    assert csi["values"]["defaultMountImage"]["ce"].startswith("juicedata/mount:ce-v1.3")
    options = csi["values"]["globalConfig"]["mountPodPatch"][0]["mountOptions"]
    assert {"cache-dir=/var/jfsCache", "cache-size=102400", "buffer-size=1024", "prefetch=3"} <= set(options)
    assert docs["Release/seaweedfs"]["spec"]["version"] == "4.44.0"
    claim = docs[f"PersistentVolumeClaim/{MODELS_CLAIM}"]
    assert claim["metadata"]["namespace"] == "llm"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "100Gi"}},
        "storageClassName": "juicefs-sc",
    }
    sc = docs["StorageClass/juicefs-sc"]
    assert sc["provisioner"] == "csi.juicefs.com"
    assert sc["parameters"]["csi.storage.k8s.io/node-publish-secret-name"] == "juicefs-volume"
    secret = docs["Secret/juicefs-volume"]["stringData"]
    assert set(secret) == {"name", "metaurl", "storage", "bucket", "access-key", "secret-key"}
    assert secret["bucket"] == "http://seaweedfs-s3.storage.svc:8333/llm-models"
    conf = docs["ConfigMap/valkey"]["data"]["valkey.conf"]
    assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"} <= set(conf.splitlines())
    valkey = docs["StatefulSet/valkey"]["spec"]
    assert valkey["template"]["spec"]["containers"][0]["image"] == "valkey/valkey:9.1.1"
    assert valkey["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    load = docs["Job/load-llama-70b"]
    assert load["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert weights_path("meta-llama/Llama-2-70b-chat-hf") in " ".join(
        load["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    assert "pulumi.com/skipAwait" not in docs["Job/juicefs-format"]["metadata"].get("annotations", {})


def test_generated_credentials_are_secret_placeholders(rendered_stacks: dict[str, Rendered]) -> None:
    docs = storage(rendered_stacks["prod"])
    secret = docs["Secret/juicefs-volume"]["stringData"]
    assert (
        secret["metaurl"]
        == "redis://:<secret: RandomPassword 'model-storage-valkey-password'>@valkey.storage.svc:6379/1"
    )
    assert secret["access-key"].startswith("<secret: RandomPassword")
    assert secret["secret-key"].startswith("<secret: RandomPassword")
    declared = {d.name: d for d in rendered_stacks["prod"].declared}
    assert all(
        declared[f"model-storage-{n}"].inputs.get("special") is False for n in ("valkey-password", "s3-secret-key")
    )


def test_policies_admit_only_juicefs_clients(rendered_stacks: dict[str, Rendered]) -> None:
    docs = storage(rendered_stacks["prod"])
    clients = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}},
        }
        for ns in ("kube-system", "storage")
    ]
    valkey = docs["NetworkPolicy/valkey-from-juicefs-clients"]["spec"]
    assert valkey["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "valkey"}}
    assert valkey["ingress"] == [{"from": clients, "ports": [{"port": 6379, "protocol": "TCP"}]}]
    assert docs["NetworkPolicy/default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    seaweed = docs["Release/seaweedfs"]["spec"]["values"]["networkPolicy"]
    assert seaweed == {
        "enabled": True,
        "extraIngress": [{"from": clients, "ports": [{"port": 8333, "protocol": "TCP"}]}],
    }
    # Every JuiceFS client carries the label the policies admit.
    values = docs["Release/juicefs-csi-driver"]["spec"]["values"]
    assert values["globalConfig"]["mountPodPatch"][0]["labels"] == {CLIENT_LABEL: "true"}
    assert values["node"]["labels"] == values["controller"]["labels"] == {CLIENT_LABEL: "true"}
    assert docs["Job/juicefs-format"]["spec"]["template"]["metadata"]["labels"][CLIENT_LABEL] == "true"


def test_dev_simulator_models_get_no_loader(rendered_stacks: dict[str, Rendered]) -> None:
    docs = storage(rendered_stacks["dev"])
    assert not [k for k in docs if k.startswith("Job/load-")]
    assert docs[f"PersistentVolumeClaim/{MODELS_CLAIM}"]["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_external_stores_take_secret_credentials_and_minio_is_frozen(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["modelStorage"] = {
        "redis": {"kind": "external", "url": "redis://redis.example:6379/2", "password": "<secret: config 'pw'>"},
        "objectStore": {
            "kind": "external",
            "endpoint": "https://s3.eu-west-1.amazonaws.com",
            "bucket": "weights",
            "region": "eu-west-1",
            "accessKey": "<secret: config 'ak'>",
            "secretKey": "<secret: config 'sk'>",
        },
        "loader": {"hfToken": "<secret: config 'hf'>", "warmup": True},
    }
    rendered = render_config(raw)
    docs = storage(rendered)
    secret = docs["Secret/juicefs-volume"]["stringData"]
    assert secret["metaurl"] == "redis://:<secret: config 'pw'>@redis.example:6379/2"
    assert secret["bucket"] == "https://s3.eu-west-1.amazonaws.com/weights"
    assert secret["envs"] == '{"AWS_REGION": "eu-west-1"}'
    assert not [k for k in docs if k.startswith(("StatefulSet/", "Release/seaweedfs"))]
    assert "--create-bucket" not in docs["Job/juicefs-format"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert docs["Secret/hf-token"]["stringData"] == {"token": "<secret: config 'hf'>"}
    warm = docs["DaemonSet/warm-llama-70b"]["spec"]["template"]["spec"]
    assert GPU_TOLERATION in warm["tolerations"] and warm["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    by_name = {d.name: d for d in rendered.declared}
    assert rpc.is_rpc_secret(by_name["model-storage-volume"].inputs["stringData"])

    raw["modelStorage"] = {"objectStore": {"kind": "minio"}}
    minio = storage(render_config(raw))["StatefulSet/minio"]["spec"]["template"]["spec"]["containers"][0]
    assert minio["image"] == "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"


@pytest.mark.parametrize(
    ("storage_config", "errors"),
    [
        (
            {"objectStore": {"kind": "external"}},
            [
                "modelStorage.objectStore.endpoint: required when kind is external, and only then",
                "modelStorage.objectStore.accessKey: required when kind is external (set it as a Pulumi secret)",
                "modelStorage.objectStore.secretKey: required when kind is external (set it as a Pulumi secret)",
            ],
        ),
        (
            {"redis": {"password": "x"}},
            ["modelStorage.redis.password: only for kind external: the in-cluster password is generated"],
        ),
        ({"models": [{"name": "nope"}]}, ["modelStorage.models[0].name: no model named 'nope'"]),
    ],
)
def test_config_errors_name_the_key(storage_config: dict[str, Any], errors: list[str]) -> None:
    raw = stack_config("prod")
    raw["modelStorage"] = storage_config
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert caught.value.errors == errors


def test_model_ids_must_name_a_folder() -> None:
    raw = stack_config("prod")
    raw["models"][0]["modelID"] = "../etc"
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert caught.value.errors == [
        "models[0].modelID: must be a Hugging Face repository id (org/name): it names the weights' folder"
    ]
    with pytest.raises(ValueError):
        weights_path("../etc")


REPO = "org/model"
FILES = {"config.json": b"{}", "model.safetensors": os.urandom(300_000), "extra.bin": b"x" * 10}


def download(endpoint: str, dest: Path, token: str | None = None) -> Any:
    env = {**os.environ, "HF_ENDPOINT": endpoint, **({"HF_TOKEN": token} if token else {})}
    args = ["download", "--repo", REPO, "--dest", str(dest), "--include", "*.json", "--include", "*.safetensors"]
    return run_script("model_loader.py", args, env)


def test_loader_downloads_verifies_and_skips_what_is_there(tmp_path: Path) -> None:
    with hub(REPO, FILES, {"model.safetensors"}) as fake:
        first = download(fake.endpoint, tmp_path, token="hf_secret")
        assert first.returncode == 0, first.stderr
        assert sorted(fake.downloads) == ["config.json", "model.safetensors"]
        assert set(fake.tokens) == {"Bearer hf_secret"}
        assert (tmp_path / "model.safetensors").read_bytes() == FILES["model.safetensors"]
        assert not (tmp_path / "extra.bin").exists()
        fake.downloads.clear()
        assert download(fake.endpoint, tmp_path).returncode == 0
        assert fake.downloads == []
        # A file changed on disk (same size) is found by its hash and fetched again.
        (tmp_path / "config.json").write_bytes(b"[]")
        (tmp_path / ".llm-platform-manifest.json").unlink()
        assert download(fake.endpoint, tmp_path).returncode == 0
        assert fake.downloads == ["config.json"]


def test_loader_never_keeps_a_corrupt_file(tmp_path: Path) -> None:
    with hub(REPO, FILES, {"model.safetensors"}) as fake:
        fake.corrupt.add("model.safetensors")
        result = download(fake.endpoint, tmp_path)
    assert result.returncode == 1
    assert "model.safetensors: download failed 3 times" in result.stderr
    assert not (tmp_path / "model.safetensors").exists()


def test_loader_says_which_model_is_missing(tmp_path: Path) -> None:
    with hub("other/model", FILES, set()) as fake:
        result = download(fake.endpoint, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: no model {REPO} at revision main on {fake.endpoint}"
