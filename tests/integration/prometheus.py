"""Real Prometheus on loopback, scraping simulated model servers that export vLLM's metric names and labels.

Targets carry the `namespace` and `pod` labels a PodMonitor gives them, so queries run exactly as in the cluster.
"""

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)  # vLLM's first edges
PROMPT_BUCKETS = tuple(float(m * 10**k) for k in range(6) for m in (1, 2, 5))  # vLLM's 1-2-5 series
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0)  # vLLM's request latency edges


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SimulatedVllm:
    """One model-server pod's /metrics with vLLM's names; values are set by the test."""

    namespace: str
    pod: str
    model_name: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ("model_name", "engine")
        r = self.registry
        self.kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage", labels, registry=r).labels(self.model_name, "0")
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=r).labels(self.model_name, "0")
        self.running = Gauge("vllm:num_requests_running", "running", labels, registry=r).labels(self.model_name, "0")
        self.success = Counter("vllm:request_success", "finished", (*labels, "finished_reason"), registry=r).labels(
            self.model_name, "0", "stop"
        )
        self.itl = Histogram("vllm:inter_token_latency_seconds", "ITL", labels, buckets=ITL_BUCKETS, registry=r).labels(
            self.model_name, "0"
        )
        self.generated = Counter("vllm:generation_tokens", "generated tokens", labels, registry=r).labels(
            self.model_name, "0"
        )
        self.prefix_queries = Counter(
            "vllm:prefix_cache_queries", "prompt tokens looked up", labels, registry=r
        ).labels(self.model_name, "0")
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "prompt tokens cached", labels, registry=r).labels(
            self.model_name, "0"
        )
        Gauge("vllm:cache_config_info", "KV-cache configuration", ("num_gpu_blocks", "block_size"), registry=r).labels(
            "29000", "16"
        ).set(1)
        self.tpot = Histogram(
            "vllm:request_time_per_output_token_seconds", "TPOT per request", labels, buckets=TPOT_BUCKETS, registry=r
        ).labels(self.model_name, "0")
        self.prompts = Histogram(
            "vllm:request_prompt_tokens", "prompt tokens per request", labels, buckets=PROMPT_BUCKETS, registry=r
        ).labels(self.model_name, "0")
        self.outputs = Histogram(
            "vllm:request_generation_tokens", "output tokens per request", labels, buckets=PROMPT_BUCKETS, registry=r
        ).labels(self.model_name, "0")
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "TTFT", labels, buckets=TTFT_BUCKETS, registry=r
        ).labels(self.model_name, "0")
        self.prefill = Histogram(
            "vllm:request_prefill_time_seconds", "prefill time", labels, buckets=LATENCY_BUCKETS, registry=r
        ).labels(self.model_name, "0")
        self.server = _exposition_server(self.registry)
        self.port = int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _exposition_server(registry: CollectorRegistry) -> ThreadingHTTPServer:
    """Always the classic text format, as vLLM serves it: metric names keep their colons whatever Accept says."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class RunningPrometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, promql: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urlencode({'query': promql})}", timeout=5) as r:
            return list(json.load(r)["data"]["result"])

    def wait_for(self, promql: str, count: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.query(promql)) >= count:
                return
            time.sleep(0.5)
        raise AssertionError(f"{promql} did not return {count} series in {timeout_s}s")


def static_job(targets: list[SimulatedVllm]) -> dict[str, Any]:
    """What the serving PodMonitor produces, in short: one job, target labels namespace and pod."""
    return {
        "job_name": "model-servers",
        "static_configs": [
            {"targets": [f"127.0.0.1:{t.port}"], "labels": {"namespace": t.namespace, "pod": t.pod}} for t in targets
        ],
    }


def prometheus(
    targets: list[SimulatedVllm], workdir: Path, rule_files: list[Path] | None = None
) -> AbstractContextManager[RunningPrometheus]:
    return run_prometheus([static_job(targets)], rule_files or [], workdir)


@contextmanager
def run_prometheus(
    jobs: list[dict[str, Any]], rule_files: Sequence[Path], workdir: Path, start_timeout_s: float = 20.0
) -> Iterator[RunningPrometheus]:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": jobs,
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prometheus.log").open("wb"),
    )
    running = RunningPrometheus(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{running.url}/-/ready", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    log = (workdir / "prometheus.log").read_text()[-2000:]
                    raise AssertionError(f"Prometheus did not start:\n{log}") from None
                time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
