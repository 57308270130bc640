"""Real servers for the storage tests, on loopback and free ports, always stopped; settings taken from the render.

The render shows generated secrets as placeholders: `real_secrets` replaces each placeholder by one random value
everywhere, so the Valkey password in `valkey.conf`'s include, the metadata URL and the S3 identities agree as they
do in the cluster.
"""

import hashlib
import json
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

from components.model_storage.backends import AUTH_CONF, DATA_DIR
from stack.render import Rendered

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCRIPTS = REPO / "components" / "model_storage" / "scripts"
PLACEHOLDER = re.compile(r"<secret: [^>]*>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_port() -> int:
    """A free port whose gRPC twin (port + 10000, SeaweedFS's convention) is free and valid too."""
    while True:
        port = free_port()
        if port < 55000:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port + 10000)) != 0:
                    return port


def wait_for(check: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {seconds} s")


def stop(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    if process.poll() is None:
        process.kill() if kill else process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def real_secrets(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """The storage objects by `Kind/name`, every secret placeholder replaced by a consistent random value."""
    text = json.dumps(rendered.documents["model-storage"])
    values: dict[str, str] = {}
    text = PLACEHOLDER.sub(lambda m: values.setdefault(m.group(0), secrets.token_hex(16)), text)
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in json.loads(text)}


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Redis:
    """redis-server with the rendered valkey.conf and auth include, data in `folder`."""

    def __init__(self, objects: dict[str, dict[str, Any]], folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        self.port, self.folder = free_port(), folder
        auth = folder / "auth.conf"
        auth.write_text(objects["Secret/valkey-auth"]["stringData"]["auth.conf"])
        self.conf = folder / "valkey.conf"
        conf = objects["ConfigMap/valkey"]["data"]["valkey.conf"]
        self.conf.write_text(conf.replace(AUTH_CONF, str(auth)).replace(f"dir {DATA_DIR}\n", f"dir {folder}\n"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [str(self.conf), "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)
        process = self.process
        wait_for(lambda: process.poll() is None and port_open(self.port), "redis-server", 10)

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            stop(self.process, kill)


class SeaweedS3:
    """`weed server -s3` with the rendered identities file."""

    def __init__(self, objects: dict[str, dict[str, Any]], folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        identities = folder / "s3.json"
        identities.write_text(objects["Secret/seaweedfs-s3-config"]["stringData"]["seaweedfs_s3_config"])
        # Free ports can be taken again before weed binds them (busy machines): one more try on fresh ports.
        for attempt in range(2):
            self.port = weed_port()  # S3 has a gRPC twin too
            ports = {name: weed_port() for name in ("master", "volume", "filer")}
            args = ["server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={folder / str(attempt)}", "-filer", "-s3"]
            args += [f"-master.port={ports['master']}", f"-volume.port={ports['volume']}"]
            args += [f"-filer.port={ports['filer']}", f"-s3.port={self.port}", f"-s3.config={identities}"]
            (folder / str(attempt)).mkdir(exist_ok=True)
            self.log = (folder / f"weed-{attempt}.log").open("wb")
            self.process = subprocess.Popen([str(BIN / "weed"), *args], stdout=self.log, stderr=subprocess.STDOUT)
            try:
                wait_for(self._answers, "SeaweedFS S3", 60)
                return
            except TimeoutError:
                self.stop()
                if attempt:
                    tail = (folder / f"weed-{attempt}.log").read_text(errors="replace")[-2000:]
                    raise TimeoutError(f"SeaweedFS S3 not ready after 60 s twice; log:\n{tail}") from None

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        stop(self.process)
        self.log.close()


class Hub:
    """A stand-in for the Hugging Face file API: one repository, counting downloads and the tokens it saw."""

    def __init__(self, repo: str, files: dict[str, bytes], lfs: set[str]) -> None:
        self.repo, self.files, self.lfs = repo, files, lfs
        self.commit = "c0ffee" * 6 + "abcd"
        self.downloads: list[str] = []
        self.tokens: list[str | None] = []
        self.corrupt: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def siblings(self) -> list[dict[str, Any]]:
        found = []
        for name, data in self.files.items():
            git = hashlib.sha1(f"blob {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()
            entry: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": git}
            if name in self.lfs:
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            found.append(entry)
        return found

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub.tokens.append(self.headers.get("Authorization"))
                listing = f"/api/models/{hub.repo}/revision/main?blobs=true"
                prefix = f"/{hub.repo}/resolve/{hub.commit}/"
                if self.path == listing:
                    self._send(json.dumps({"sha": hub.commit, "siblings": hub.siblings()}).encode())
                elif self.path.startswith(prefix) and self.path[len(prefix) :] in hub.files:
                    name = self.path[len(prefix) :]
                    hub.downloads.append(name)
                    data = hub.files[name]
                    self._send(data[:-1] + b"!" if name in hub.corrupt else data)
                else:
                    self.send_error(404)

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def hub(repo: str, files: dict[str, bytes], lfs: set[str]) -> Iterator[Hub]:
    server = Hub(repo, files, lfs)
    try:
        yield server
    finally:
        server.close()


def run_script(script: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A script of components/model_storage/scripts exactly as its Job runs it, bounded in time."""
    command = [sys.executable, str(SCRIPTS / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
