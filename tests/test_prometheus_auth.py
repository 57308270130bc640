"""The autoscaler reaches a Prometheus behind TLS with its own CA, a bearer token, or basic auth (real HTTP)."""

import base64
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from autoscaler.metrics import PrometheusAuth, connect


@contextmanager
def prometheus_api(seen: list[str | None], context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Answers /api/v1/query with an empty vector and records the Authorization header of each request."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if context else "http"
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_bearer_token_and_basic_auth(tmp_path: Path) -> None:
    token, password = tmp_path / "token", tmp_path / "password"
    token.write_text("s3cret-token\n")
    password.write_text("pa55\n")
    seen: list[str | None] = []
    with prometheus_api(seen) as url:
        assert connect(PrometheusAuth(url, token_file=token)).custom_query("up") == []
        assert connect(PrometheusAuth(url, username="wva", password_file=password)).custom_query("up") == []
    assert seen == ["Bearer s3cret-token", "Basic " + base64.b64encode(b"wva:pa55").decode()]


def test_tls_with_a_private_ca(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen: list[str | None] = []
    with prometheus_api(seen, context) as url:
        assert connect(PrometheusAuth(url, ca_file=cert)).custom_query("up") == []
        with pytest.raises(requests.exceptions.SSLError):
            connect(PrometheusAuth(url)).custom_query("up")  # an unknown CA is refused, not ignored
    assert seen == [None]
