"""`make envtest` against a local HTTP server: a tarball built here is verified, unpacked flat and reused; a wrong
checksum or an unpinned platform fails clearly and installs nothing. Needs no envtest binaries."""

import functools
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scripts import envtest


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A release mirror on loopback serving an envtest tarball laid out as controller-tools ships it."""
    root = tmp_path / "mirror"
    folder = root / f"envtest-v{envtest.VERSION}"
    folder.mkdir(parents=True)
    archive = folder / f"envtest-v{envtest.VERSION}-{envtest.this_platform()}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in envtest.BINARIES:
            data = f"#!/bin/sh\necho {name}\n".encode()
            info = tarfile.TarInfo(f"controller-tools/envtest/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", archive
    finally:
        server.shutdown()
        server.server_close()


def test_a_verified_tarball_is_unpacked_flat_reused_and_its_folder_printed(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, archive = mirror
    monkeypatch.setitem(envtest.SHA512, envtest.this_platform(), hashlib.sha512(archive.read_bytes()).hexdigest())
    command = ["--dir", str(tmp_path / "cache"), "--base-url", base_url]
    assert envtest.main(command) == 0
    target = Path(capsys.readouterr().out.strip())  # stdout is the folder alone: KUBEBUILDER_ASSETS=$(make -s envtest)
    assert target == tmp_path / "cache" / "k8s" / f"{envtest.VERSION}-{envtest.this_platform()}"
    assert sorted(p.name for p in target.iterdir()) == sorted(envtest.BINARIES)
    assert (target / "kube-apiserver").read_text().endswith("echo kube-apiserver\n")
    assert (target / "etcd").stat().st_mode & 0o111
    archive.unlink()  # a second run finds the binaries and downloads nothing
    assert envtest.main(command) == 0
    assert capsys.readouterr().out.strip() == str(target)


def test_a_wrong_checksum_fails_clearly_and_installs_nothing(
    mirror: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, _ = mirror
    cache = tmp_path / "cache"
    # The real pin cannot match the tarball built here: the whole command refuses it.
    assert envtest.main(["--dir", str(cache), "--base-url", base_url]) == 1
    error = capsys.readouterr().err
    assert "is not the pinned" in error and envtest.SHA512[envtest.this_platform()] in error
    assert not list(cache.glob("k8s/*"))


def test_an_unpinned_platform_fails_clearly() -> None:
    with pytest.raises(envtest.EnvtestError, match=r"no envtest binaries pinned for windows-386; pinned: linux-amd64"):
        envtest.pinned("windows-386")
    assert all(len(h) == 128 and int(h, 16) for h in envtest.SHA512.values())
