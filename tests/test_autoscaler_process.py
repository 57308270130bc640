"""`python -m autoscaler` as a process: endpoints, one leader among two replicas, graceful shutdown, its log."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from autoscaler.api import LEASE_NAME
from tests.kube_standin import Cluster, running
from tests.test_controller import MODEL_ID, NS, variant_autoscaling


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster()
    c.put("variantautoscalings", variant_autoscaling())
    return c


@pytest.fixture
def kubeconfig(cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    with running(cluster) as api:
        host = api.configuration.host
        path = tmp_path / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": host}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        yield path


PROMETHEUS_GONE = f"http://127.0.0.1:{free_port()}"


def start(kubeconfig: Path, identity: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    """`options` come last and so win, e.g. another `--prometheus-url`."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAME": identity, "POD_NAMESPACE": "wva-system"}
    command = [sys.executable, "-m", "autoscaler", "--interval", "1", "--metrics-port", str(port)]
    # Prometheus is not there: every model holds, and the process must stay healthy.
    command += ["--prometheus-url", PROMETHEUS_GONE, *options]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except urllib.error.URLError:
        return 0, ""  # not listening yet


def test_two_replicas_one_leader_and_a_graceful_handover(cluster: Cluster, kubeconfig: Path) -> None:
    ports = [free_port(), free_port()]
    first = start(kubeconfig, "first", ports[0], "--log-format", "json")
    try:
        wait_for(lambda: cluster.get("leases", "wva-system", LEASE_NAME) is not None)
        second = start(kubeconfig, "second", ports[1])
        try:
            wait_for(lambda: get(ports[1], "/healthz")[0] == 200)
            lease = cluster.get("leases", "wva-system", LEASE_NAME)
            assert lease is not None and lease["spec"]["holderIdentity"] == "first"
            wait_for(lambda: "MetricsAvailable" in str(cluster.get("variantautoscalings", NS, "llama-70b")))
            status, metrics = get(ports[0], "/metrics")
            assert status == 200 and 'wva_reconcile_errors_total{call="prometheus"}' in metrics
            patches_before = sum(1 for m, _ in cluster.requests if m == "PATCH")
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=10) == 0
            assert first.stderr is not None
            log = [json.loads(line) for line in first.stderr.read().decode().splitlines()]
            said = [line["message"] for line in log]
            assert said[1] == f"first leads: it holds the Lease wva-system/{LEASE_NAME}", said
            hold = next(line for line in log if line["level"] == "WARNING")
            assert (hold["model"], hold["namespace"]) == (MODEL_ID, NS)
            assert f"Prometheus at {PROMETHEUS_GONE} unreachable (connection refused)" in hold["reason"]
            assert said[-1] == "autoscaler first stopped"
            assert not any("%2C" in m or "Traceback" in m for m in said), "no URL-encoded query, no traceback"
            # The Lease is handed over at once, and the standby takes over.
            wait_for(
                lambda: (
                    (cluster.get("leases", "wva-system", LEASE_NAME) or {}).get("spec", {}).get("holderIdentity")
                    == "second"
                )
            )
            wait_for(lambda: sum(1 for m, _ in cluster.requests if m == "PATCH") > patches_before)
        finally:
            second.terminate()
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
