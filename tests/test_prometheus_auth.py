"""The autoscaler reaches a Prometheus behind TLS with its own CA, a bearer token, or basic auth (real HTTP)."""

import base64
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import requests

from autoscaler.metrics import PrometheusAuth, connect
from tests.prometheus_api import serving


@contextmanager
def prometheus_api(seen: list[str | None], context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Answers every query with an empty vector and records the Authorization header of each request."""

    def answer(promql: str, headers: Message) -> list[dict[str, Any]]:
        seen.append(headers.get("Authorization"))
        return []

    with serving(answer, context, host="localhost") as url:
        yield url


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
