"""JuiceFS end to end on the servers and settings the component renders: the format Job's script, a FUSE mount
with the CSI mount options, the loader Job's script writing a scaled-down model, a metadata crash, and the errors
a user sees when a setting is wrong."""

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.model_storage.volume import weights_path
from stack.render import render
from tests.conftest import stack_config
from tests.integration.storage_servers import (
    BIN,
    Redis,
    SeaweedS3,
    free_port,
    hub,
    real_secrets,
    run_script,
    wait_for,
)

pytestmark = pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="FUSE is needed to mount JuiceFS")

MODEL = "example-org/tiny-llm"
FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "tokenizer.json": b'{"version": "1.0"}' * 50,
    "model-00001-of-00002.safetensors": os.urandom(9 * 2**20),
    "model-00002-of-00002.safetensors": os.urandom(3 * 2**20 + 17),
    "pytorch_model.bin": os.urandom(2**20),  # not matched by the default include patterns
}
LFS = {name for name in FILES if name.endswith((".safetensors", ".bin"))}


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    return real_secrets(render("prod", stack_config("prod")))


@pytest.fixture(scope="module")
def servers(
    objects: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Redis, Any]]:
    root = tmp_path_factory.mktemp("storage")
    redis = Redis(objects, root / "redis")
    redis.start()
    try:
        s3 = SeaweedS3(objects, root / "seaweedfs")
        try:
            yield redis, s3
        finally:
            s3.stop()
    finally:
        redis.stop()


def settings_folder(objects: dict[str, dict[str, Any]], redis: Redis, s3: Any, folder: Path, **change: str) -> Path:
    """The JuiceFS Secret's keys as the Job sees them (files), the cluster's hosts mapped to loopback."""
    values = dict(objects["Secret/juicefs-volume"]["stringData"])
    values["metaurl"] = values["metaurl"].replace("valkey.storage.svc:6379", f"127.0.0.1:{redis.port}")
    values["bucket"] = values["bucket"].replace("seaweedfs-s3.storage.svc:8333", f"127.0.0.1:{s3.port}")
    values.update(change)
    folder.mkdir(exist_ok=True)
    for key, value in values.items():
        (folder / key).write_text(value)
    return folder


def format_args(objects: dict[str, dict[str, Any]], settings: Path) -> list[str]:
    """The format Job's own command line, its paths mapped to the test's."""
    command = objects["Job/juicefs-format"]["spec"]["template"]["spec"]["containers"][0]["command"]
    mapped = {"/etc/juicefs": str(settings), "/opt/juicefs/juicefs": str(BIN / "juicefs")}
    return [mapped.get(part, part) for part in command[2:]]


def volume_uuid(metaurl: str) -> str:
    status = subprocess.run([str(BIN / "juicefs"), "status", metaurl], capture_output=True, text=True, timeout=60)
    return str(json.loads(status.stdout)["Setting"]["UUID"])


def mount(objects: dict[str, dict[str, Any]], metaurl: str, point: Path, cache: Path) -> None:
    """`juicefs mount` with the mount options the CSI mount pods get, the cache folder moved into the test's."""
    patch = next(d for d in objects.values() if d["kind"] == "Release" and d["spec"]["chart"] == "juicefs-csi-driver")
    options = patch["spec"]["values"]["globalConfig"]["mountPodPatch"][0]["mountOptions"]
    flags = [f"--{o.split('=')[0]}={cache if o.startswith('cache-dir=') else o.split('=', 1)[1]}" for o in options]
    point.mkdir(exist_ok=True)
    result = subprocess.run(
        [str(BIN / "juicefs"), "mount", "-d", *flags, metaurl, str(point)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    wait_for(lambda: os.path.ismount(point), "JuiceFS mount")


def umount(point: Path) -> None:
    subprocess.run([str(BIN / "juicefs"), "umount", "--force", str(point)], capture_output=True, timeout=60)


def loader(objects: dict[str, dict[str, Any]], endpoint: str, dest: Path) -> subprocess.CompletedProcess[str]:
    """The loader Job's command for the prod model, pointed at the stand-in hub and at this model's folder."""
    command = objects["Job/load-llama-70b"]["spec"]["template"]["spec"]["containers"][0]["command"]
    args = command[2:]
    args[args.index("--repo") + 1] = MODEL
    args[args.index("--dest") + 1] = str(dest)
    return run_script("model_loader.py", args, {**os.environ, "HF_ENDPOINT": endpoint})


def test_format_load_crash_remount_and_verify(
    objects: dict[str, dict[str, Any]], servers: tuple[Redis, Any], tmp_path: Path
) -> None:
    redis, s3 = servers
    settings = settings_folder(objects, redis, s3, tmp_path / "settings")
    metaurl = (settings / "metaurl").read_text()
    first = run_script("juicefs_format.py", format_args(objects, settings))
    assert first.returncode == 0, first.stderr
    assert "created bucket" in first.stdout and "formatted volume 'llm-models'" in first.stdout
    uuid = volume_uuid(metaurl)

    point, cache = tmp_path / "mnt", tmp_path / "cache"
    mount(objects, metaurl, point, cache)
    try:
        with hub(MODEL, FILES, LFS) as fake:
            loaded = loader(objects, fake.endpoint, point / weights_path(MODEL))
            assert loaded.returncode == 0, loaded.stderr
            assert sorted(fake.downloads) == sorted(n for n in FILES if not n.endswith(".bin"))
        redis.stop(kill=True)  # SIGKILL: only the append-only file tells what was written
        redis.start()
    finally:
        umount(point)
    mount(objects, metaurl, point, cache)
    try:
        folder = point / weights_path(MODEL)
        for name, data in FILES.items():
            if name.endswith(".bin"):
                assert not (folder / name).exists()
            else:
                assert hashlib.sha256((folder / name).read_bytes()).digest() == hashlib.sha256(data).digest(), name
        with hub(MODEL, FILES, LFS) as fake:
            again = loader(objects, fake.endpoint, folder)
            assert again.returncode == 0, again.stderr
            assert fake.downloads == []
            assert "4 of 4 files present and verified, downloading 0" in again.stdout
    finally:
        umount(point)

    rerun = run_script("juicefs_format.py", format_args(objects, settings))
    assert rerun.returncode == 0, rerun.stderr
    assert "already formatted: nothing to do" in rerun.stdout
    assert volume_uuid(metaurl) == uuid  # the same volume, not a new one


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metaurl": "wrong-password"}, "rejected the password"),
        ({"bucket": "missing-bucket"}, "does not exist: create it in the object store"),
        ({"bucket": "unreachable"}, "is unreachable"),
    ],
)
def test_wrong_settings_fail_with_a_clear_message(
    objects: dict[str, dict[str, Any]], servers: tuple[Redis, Any], tmp_path: Path, change: dict[str, str], message: str
) -> None:
    redis, s3 = servers
    settings = settings_folder(objects, redis, s3, tmp_path / "settings")
    values = {k: (settings / k).read_text() for k in ("metaurl", "bucket")}
    if "metaurl" in change:
        password = values["metaurl"].split(":")[2].split("@")[0]
        (settings / "metaurl").write_text(values["metaurl"].replace(password, "not-the-password"))
    elif change["bucket"] == "missing-bucket":
        (settings / "bucket").write_text(values["bucket"].rsplit("/", 1)[0] + "/not-created")
    else:
        (settings / "bucket").write_text(f"http://127.0.0.1:{free_port()}/llm-models")
    args = [a for a in format_args(objects, settings) if a != "--create-bucket"]
    result = run_script("juicefs_format.py", args)
    assert result.returncode == 1
    assert message in result.stderr.strip().splitlines()[-1]
