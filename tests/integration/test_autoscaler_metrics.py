"""The autoscaler's PromQL against a real Prometheus scraping simulated vLLM pods, and a full controller pass."""

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusConnect

from autoscaler.buckets import share_within
from autoscaler.controller import Controller, Settings
from autoscaler.kube import Kube
from autoscaler.metrics import collect
from tests.integration.prometheus import PROMETHEUS, RunningPrometheus, SimulatedVllm, prometheus
from tests.kube_standin import running
from tests.test_controller import MODEL_ID, NS, VARIANTS, serving_cluster

QUERIES = Settings(namespace="wva-system").queries
pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian package prometheus not installed")


@pytest.fixture(scope="module")
def pods() -> Iterator[list[SimulatedVllm]]:
    servers = [
        SimulatedVllm(NS, f"{VARIANTS[0]}-0", MODEL_ID),
        SimulatedVllm(NS, f"{VARIANTS[0]}-1", MODEL_ID),
        SimulatedVllm(NS, "gone-pod", MODEL_ID),  # a deleted pod whose series linger
        SimulatedVllm("other", "other-0", "other/model"),
    ]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def prom(pods: list[SimulatedVllm], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    pods[0].kv.set(0.75)
    pods[0].waiting.set(2)
    pods[1].kv.set(0.76)
    pods[1].waiting.set(2)
    pods[2].kv.set(0.99)
    pods[3].kv.set(0.10)
    for p in pods:
        p.running.set(4)
    with prometheus(pods, tmp_path_factory.mktemp("prometheus")) as running_prometheus:
        running_prometheus.wait_for("up == 1", len(pods))
        # Completions and token latencies over a few scrapes, so that rate() has two points.
        for _ in range(6):
            for p in pods[:2]:
                p.success.inc(3)
                p.generated.inc(600)
                p.prefix_queries.inc(4000)
                p.prefix_hits.inc(1000)
                for prompt, output, ttft in ((800, 100, 0.4), (1500, 200, 1.2), (12_000, 300, 3.0)):
                    p.prompts.observe(prompt)  # one in three over 10k tokens, and over a 2 s TTFT
                    p.outputs.observe(output)
                    p.ttft.observe(ttft)
                    p.prefill.observe(ttft / 2)
                for _ in range(20):
                    p.itl.observe(0.05)
                for tpot in (0.04, 0.09, 0.12):  # one of three requests misses a 100 ms objective
                    p.tpot.observe(tpot)
            time.sleep(1)
        running_prometheus.wait_for(QUERIES.per_pod["throughput"].promql, 2)
        yield running_prometheus


def test_queries_return_per_pod_values(prom: RunningPrometheus) -> None:
    # Every query at one instant, a second back so that its scrapes are all stored: a scrape between two queries
    # moves an extrapolated increase() by a few percent.
    client, at = PrometheusConnect(prom.url), time.time() - 1.0
    snapshot = collect(lambda promql: client.custom_query(promql, params={"time": at}), QUERIES)
    first = snapshot.pods[(NS, f"{VARIANTS[0]}-0")]
    assert first.kv == pytest.approx(0.75) and first.queue == 2 and first.running == 4
    assert first.model_name == MODEL_ID
    assert first.throughput is not None and first.throughput > 0
    assert first.itl_s == pytest.approx(0.05)
    assert first.kv_tokens == 29000 * 16
    assert first.generation_tps is not None and first.generation_tps > 0
    assert first.last_seen is not None and time.time() - first.last_seen < 10
    finished, met = first.tpot_within(0.1) or (0.0, 0.0)
    assert finished > 0 and met == pytest.approx(finished * 2 / 3, rel=0.01)
    assert first.tpot_within(0.08) == (finished, pytest.approx(finished / 3, rel=0.01))  # read at the 75 ms edge
    assert first.tpot_within(0.005) is None
    assert first.prefix_hit_ratio == pytest.approx(0.25)
    assert first.prefill_s == pytest.approx((0.4 + 1.2 + 3.0) / 3 / 2)  # the mean prefill time over the window
    prompts = snapshot.prompt_tokens[(NS, MODEL_ID)]  # both pods of the model, by prompt length
    assert prompts[math.inf] > 0 and prompts[10_000.0] == pytest.approx(prompts[math.inf] * 2 / 3, rel=0.01)
    outputs = snapshot.generation_tokens[(NS, MODEL_ID)]  # the same requests by output length (100, 200, 300)
    assert outputs[100.0] == pytest.approx(outputs[math.inf] / 3, rel=0.01) and outputs[200.0] == pytest.approx(
        outputs[math.inf] * 2 / 3, rel=0.01
    )
    assert outputs[math.inf] == pytest.approx(prompts[math.inf], rel=0.01)
    shape = snapshot.shapes[(NS, MODEL_ID)]  # the model's mean request, and its prefix cache's share of the prompts
    assert shape.prompt_tokens == pytest.approx((800 + 1500 + 12_000) / 3, rel=0.01)
    assert shape.output_tokens == pytest.approx(200, rel=0.01) and shape.cached_share == pytest.approx(0.25)
    assert shape.requests == pytest.approx(prompts[math.inf], rel=0.01)  # one extrapolated increase() each
    ttft = snapshot.ttft[(NS, MODEL_ID)]  # the same requests by TTFT, read at the 2 s edge the platform adds
    assert share_within(ttft, 2.0) == (pytest.approx(2 / 3, rel=0.01), True)
    assert snapshot.waiting_upstream == {}  # no endpoint picker here
    assert snapshot.pods[("other", "other-0")].kv == pytest.approx(0.10)
    assert snapshot.requests_in_retention[(NS, MODEL_ID)] > 0
    assert snapshot.model_names_in(NS) == [MODEL_ID]


def test_controller_pass_with_real_prometheus(prom: RunningPrometheus) -> None:
    cluster = serving_cluster()
    with running(cluster) as api:
        query = PrometheusConnect(prom.url).custom_query
        Controller(Kube(api), query, Settings(namespace="wva-system", mode="wva-v1")).reconcile()
    # Seed vector: KV {0.75, 0.76}, queue {2, 2} -> one more replica of the cheapest variant. The deleted pod's
    # saturated series is not counted (it would make 3 reporting replicas for 2 and hold).
    assert cluster.replicas(NS, VARIANTS[0]) == 3
    found = cluster.get("variantautoscalings", NS, "llama-70b")
    assert found is not None
    l40s = next(v for v in found["status"]["variants"] if v["name"] == VARIANTS[0])
    assert l40s["kvCacheTokens"] == 2 * 29000 * 16 and l40s["generationTokensPerSecond"] > 0
