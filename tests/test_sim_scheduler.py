"""The simulated replica schedules as vLLM V1 does: a token budget per iteration with decodes first and prompts in
chunks, prefix blocks cached in the free KV-cache and evicted least recently used, prompts over the context refused."""

import math
from dataclasses import replace

import numpy as np
import pytest

from autoscaler.accelerators import TokenProfile
from autoscaler.sim.profiles import LARGE
from autoscaler.sim.requests import RequestReplica, RequestWorkload
from autoscaler.sim.serving import Slo
from autoscaler.sim.traces import HASH_BLOCK_TOKENS, Lengths, Requests, materialize, synthetic_lengths, with_burst

SLO = Slo(2.0, 0.1)


def replica_for(trace: Requests, profile: TokenProfile = LARGE["L40S"]) -> tuple[RequestReplica, RequestWorkload]:
    workload = RequestWorkload(trace, SLO, "least-work")
    return workload.new_replica(profile, 1.0), workload


def run(replica: RequestReplica, until_s: float) -> None:
    t = 0.0
    while t < until_s:
        replica.step(t, 1.0)
        t += 1.0


@pytest.mark.parametrize("prompt", [1, 2048, 2049, 10_000, 40_000])
def test_a_prompt_takes_ceil_n_over_budget_iterations_on_an_idle_replica(prompt: int) -> None:
    profile = LARGE["L40S"]
    trace = Requests(np.array([0.0]), Lengths(np.array([prompt]), np.array([1])))
    replica, workload = replica_for(trace, profile)
    replica.add(0)
    run(replica, 60.0)
    assert replica.iterations == math.ceil(prompt / profile.max_num_batched_tokens)
    assert workload.ttft[0] == pytest.approx(profile.prefill_s(float(prompt)))


def test_an_iteration_never_schedules_more_than_the_budget() -> None:
    """Long prompts arriving while a full batch decodes: every iteration stays within max_num_batched_tokens."""
    profile = replace(LARGE["H100"], max_num_batched_tokens=1024, max_num_seqs=256)
    base = synthetic_lengths(3_000, 4)
    lengths = Lengths(np.where(np.arange(3_000) % 7 == 0, 9_000, base.input), base.output)
    trace = materialize(with_burst(8.0, 3, 0, 1.0, 0, lengths), seed=4)
    replica, _ = replica_for(trace, profile)
    for i in range(len(trace.arrival_s)):
        replica.add(i)
    run(replica, 600.0)
    assert 0 < replica.iteration_tokens_max <= profile.max_num_batched_tokens
    assert replica.completed == len(trace.arrival_s)


def test_chunked_prefill_bounds_the_stall_a_long_prompt_puts_on_decodes() -> None:
    """A 40k-token prompt arriving during a decode: the decode's tokens come between its chunks."""
    profile = LARGE["L40S"]
    trace = Requests(np.array([0.0, 0.5]), Lengths(np.array([100, 40_000]), np.array([200, 2])))
    replica, workload = replica_for(trace, profile)
    replica.add(0)
    replica.add(1)
    run(replica, 60.0)
    chunk_s = profile.iteration_s(profile.max_num_batched_tokens, 40_000)
    assert workload.tpot[0] < chunk_s  # not the whole 40k prefill (about 12 s) in one gap
    assert workload.ttft[1] > profile.prefill_s(40_000.0)  # it shared iterations with a decode


def hashed(arrival: list[float], blocks: list[tuple[int, ...]], output: int = 2) -> Requests:
    inputs = np.array([len(b) * HASH_BLOCK_TOKENS for b in blocks])
    return Requests(np.array(arrival), Lengths(inputs, np.full(len(blocks), output), tuple(blocks)))


def test_a_repeated_prefix_hits_on_the_same_replica() -> None:
    trace = hashed([0.0, 10.0, 20.0], [(1, 2, 3, 4), (1, 2, 3, 9), (7, 8)])
    replica, workload = replica_for(trace)
    for i in range(3):
        replica.add(i)
    run(replica, 30.0)
    assert replica.prefix_queries == 10 * HASH_BLOCK_TOKENS
    assert replica.prefix_hits == 3 * HASH_BLOCK_TOKENS  # blocks 1, 2, 3 of the second request
    assert workload.ttft[1] < workload.ttft[0]


def test_running_requests_share_a_cached_prefix() -> None:
    """A document's 16 blocks cached, then three requests that start with it at once: vLLM shares the blocks, so
    the three run together in a KV cache that holds the document once and each request's own tokens, where three
    copies would not fit and two of them would wait for the first to finish its 100 tokens."""
    profile = replace(LARGE["L40S"], kv_capacity=12_000)
    doc = tuple(range(16))
    trace = hashed([0.0, 30.0, 30.0, 30.0], [doc, (*doc, 100), (*doc, 101), (*doc, 102)], output=100)
    replica, workload = replica_for(trace, profile)
    for i in range(4):
        replica.add(i)
    run(replica, 60.0)
    assert replica.prefix_hits == 3 * 16 * HASH_BLOCK_TOKENS
    assert max(workload.ttft[1:]) < 1.0
    assert replica.kv == 0 and replica.reserved == 0  # all finished: nothing left counted


def test_cached_blocks_are_evicted_least_recently_used_when_free_capacity_runs_out() -> None:
    """Room for 4 cached blocks: A (2 blocks), then B (2), then A again (touches A), then C (2) evicts B, not A."""
    profile = replace(LARGE["L40S"], kv_capacity=4 * HASH_BLOCK_TOKENS + 8)
    a, b, c = (1, 2), (3, 4), (5, 6)
    trace = hashed([0.0, 10.0, 20.0, 30.0, 40.0, 50.0], [a, b, a, c, a, b])
    replica, _ = replica_for(trace, profile)
    for i in range(6):
        replica.add(i)
    hits = []
    t = 0.0
    for k in range(6):
        before = replica.prefix_hits
        while t < 10.0 * (k + 1):
            replica.step(t, 1.0)
            t += 1.0
        hits.append(replica.prefix_hits - before)
    full = 2 * HASH_BLOCK_TOKENS
    assert hits == [0, 0, full - 1, 0, full - 1, 0]  # a full hit still computes one token; B was evicted


def test_prompts_over_the_context_are_refused_and_counted() -> None:
    lengths = Lengths(np.array([1_000, 5_000, 3_000]), np.array([100, 100, 1_200]))
    trace = Requests(np.array([0.0, 0.1, 0.2]), lengths)
    workload = RequestWorkload(trace, SLO, "least-work", context_tokens=4096)
    replica = workload.new_replica(LARGE["H100"], 1.0)
    t = 0.0
    while t < 60.0:
        workload.step(t, [replica], [])
        t += 1.0
    outcome = workload.outcome()
    assert outcome.refused == 2 and outcome.dropped == 0 and replica.completed == 1
    assert len(workload.lengths.input) == 1  # replicas are sized by what is served


def test_prefix_aware_routing_sends_a_shared_prefix_where_it_is_cached() -> None:
    """Four conversations of 8 shared blocks each, in random order, on four replicas that each cache about two."""
    profile = replace(LARGE["H100"], kv_capacity=20_000)
    group = np.random.default_rng(5).integers(0, 4, 160)
    blocks = [(*(100 * int(group[k]) + b for b in range(8)), 1000 + k) for k in range(160)]
    trace = hashed([0.25 * k for k in range(160)], blocks, output=60)
    hits = {}
    for routing in ("least-work", "prefix-aware"):
        workload = RequestWorkload(trace, SLO, routing)  # type: ignore[arg-type]
        pool = [workload.new_replica(profile, 1.0) for _ in range(4)]
        t = 0.0
        while t < 100.0:
            workload.step(t, list(pool), [])
            t += 1.0
        hits[routing] = sum(r.prefix_hits for r in pool) / sum(r.prefix_queries for r in pool)
    assert hits["prefix-aware"] > hits["least-work"]


def test_least_work_routing_breaks_ties_at_random_as_the_endpoint_picker_does() -> None:
    """Requests 10 s apart always find the pool idle: every replica ties at no work, and the picker's random
    tie-break spreads them; a fixed order would send them all to the first replica."""
    trace = Requests(np.arange(0.0, 400.0, 10.0), Lengths(np.full(40, 100), np.full(40, 2)))
    workload = RequestWorkload(trace, SLO, "least-work")
    pool = [workload.new_replica(LARGE["H100"], 1.0) for _ in range(4)]
    t = 0.0
    while t < 410.0:
        workload.step(t, list(pool), [])
        t += 1.0
    served = [r.completed for r in pool]
    assert sum(served) == 40 and max(served) <= 20 and min(served) >= 3, served
