"""The TTFT-at-load model: prompts read from vLLM's histogram, the queue wait of a pool, the capacity it allows, and
its agreement with the per-request simulator."""

import math

import numpy as np
import pytest

from autoscaler import ttft
from autoscaler.accelerators import ACCELERATORS
from autoscaler.engine import Shape, Tuning, replica_capacity
from autoscaler.sim.requests import RequestReplica, RequestWorkload
from autoscaler.sim.serving import Slo
from autoscaler.sim.traces import Lengths, Requests, synthetic_lengths

L40S, H100 = ACCELERATORS["L40S"].profile(), ACCELERATORS["H100"].profile()
EDGES = [float(m * 10**k) for k in range(7) for m in (1, 2, 5)]
CODING = ttft.Request(2048, 30)


def histogram(lengths: np.ndarray) -> dict[float, float]:
    """vLLM's request_prompt_tokens histogram of these prompts (cumulative, inf included)."""
    return {**{e: float((lengths <= e).sum()) for e in EDGES}, math.inf: float(len(lengths))}


CODING_LENGTHS = synthetic_lengths(20_000, 0, 2048, 30)
CODING_PROMPTS = ttft.prompts_of(histogram(CODING_LENGTHS.input))


def coding_prompts() -> ttft.Prompts:
    assert CODING_PROMPTS is not None
    return CODING_PROMPTS


def test_prompts_are_read_within_their_buckets() -> None:
    prompts = ttft.prompts_of({500.0: 0.0, 1000.0: 50.0, 2000.0: 80.0, 5000.0: 100.0, math.inf: 100.0})
    assert prompts is not None
    assert sum(prompts.weights) == pytest.approx(1.0)
    first = prompts.tokens[: ttft.POINTS_PER_BUCKET]  # the 50 prompts of (500, 1000], spread in log scale
    assert all(500 < n < 1000 for n in first) and sum(prompts.weights[: ttft.POINTS_PER_BUCKET]) == pytest.approx(0.5)
    only = ttft.prompts_of({1000.0: 10.0, math.inf: 10.0})
    assert only is not None and only.tokens == (1000.0,)  # no lower edge: read at the upper
    assert ttft.prompts_of({1000.0: 0.0, math.inf: 0.0}) is None


# (servers, offered load, Erlang's C): one server waits with probability rho; two at a load of 1 wait a third of
# the time; more servers at the same utilization wait less.
ERLANG_CASES = [(1, 0.6, 0.6), (2, 1.0, 1 / 3), (10, 6.0, 0.1013), (1, 0.0, 0.0)]


@pytest.mark.parametrize(("servers", "load", "waits"), ERLANG_CASES)
def test_erlang_c(servers: int, load: float, waits: float) -> None:
    assert ttft.erlang_c(servers, load) == pytest.approx(waits, abs=1e-3)


def test_the_share_falls_with_load_and_rises_with_the_pool() -> None:
    prompts = coding_prompts()
    cap = replica_capacity(L40S, Shape(2048, 30), Tuning())
    idle = ttft.share_within(L40S, prompts, CODING, 0.0, 2.0)
    shares = [ttft.share_within(L40S, prompts, CODING, cap * f, 2.0) for f in (0.25, 0.5, 1.0)]
    assert idle > shares[0] > shares[1] > shares[2]
    assert ttft.share_within(L40S, prompts, CODING, cap, 2.0, replicas=4) > shares[2]
    # A prefill twice as slow as modelled reads like an objective half as long.
    slow = ttft.share_within(L40S, prompts, CODING, 0.0, 2.0, prefill_factor=2.0)
    assert slow == pytest.approx(ttft.share_within(L40S, prompts, CODING, 0.0, 1.0))
    assert ttft.share_within(L40S, prompts, CODING, 1e6, 2.0) == 0.0  # past the replica's capacity


# (profile, replicas, the TTFT capacity over the TPOT capacity): a lone L40S replica of a coding assistant queues
# prompts past 2 s well before its TPOT capacity; behind a router with three more replicas it does not; an H100
# prefills them fast enough either way.
CAPACITY_CASES = [(L40S, 1, (0.2, 0.4)), (L40S, 4, (1.0, 1.0)), (H100, 1, (1.0, 1.0))]


@pytest.mark.parametrize(("profile", "replicas", "ratio"), CAPACITY_CASES)
def test_the_ttft_capacity_keeps_the_share_within_a_point_of_idle(
    profile: ttft.TokenProfile, replicas: int, ratio: tuple[float, float]
) -> None:
    prompts = coding_prompts()
    within = replica_capacity(profile, Shape(2048, 30), Tuning())
    goal = ttft.share_within(profile, prompts, CODING, 0.0, 2.0) - 0.01
    cap = ttft.capacity(profile, prompts, CODING, 2.0, goal, within_rps=within, replicas=replicas)
    assert ratio[0] <= cap / within <= ratio[1]
    assert ttft.share_within(profile, prompts, CODING, cap, 2.0, replicas=replicas) >= goal
    if cap < within:
        assert ttft.share_within(profile, prompts, CODING, cap * 1.01, 2.0, replicas=replicas) < goal
    assert ttft.capacity(profile, prompts, CODING, 2.0, 1.01, within_rps=within) == 0.0  # beyond even an idle one


def replayed(trace: Requests, rate: float, duration: float) -> tuple[float, RequestReplica]:
    """One L40S replica replaying these requests for `duration` and a minute more: its share of TTFT within 2 s
    (the first minute left out), and the replica."""
    workload = RequestWorkload(trace, Slo(2.0, 0.1), "least-work")
    replica = workload.new_replica(L40S, rate)
    t = 0.0
    while t < duration + 60:
        workload.step(t, [replica], [])
        t += workload.step_s
    counted = trace.arrival_s >= 60
    return float(np.mean(np.nan_to_num(workload.ttft[counted], nan=math.inf) <= 2.0)), replica


def test_the_model_agrees_with_the_simulated_replica() -> None:
    """One L40S replica of a coding assistant at 80% of its TPOT capacity, Poisson arrivals for 20 minutes: the
    simulator's TTFT share and mean prefill time are what the model says, to 2 points and 10%."""
    rate = 0.8 * replica_capacity(L40S, Shape(2048, 30), Tuning())
    rng = np.random.default_rng(1)
    duration = 1200.0
    n = int(rng.poisson(rate * duration))
    arrival = np.sort(rng.random(n) * duration)
    simulated, replica = replayed(Requests(arrival, CODING_LENGTHS.pick(rng.integers(0, 20_000, n))), rate, duration)
    exact = ttft.Prompts(tuple(float(n) for n in CODING_LENGTHS.input), (1 / 20_000,) * 20_000)
    assert ttft.share_within(L40S, exact, CODING, rate, 2.0) == pytest.approx(simulated, abs=0.02)
    assert ttft.mean_prefill_s(L40S, exact, CODING, rate) == pytest.approx(
        replica.prefill_sum / replica.prefill_count, rel=0.1
    )


def shared_document(n: int, rng: np.random.Generator) -> Lengths:
    """Every request starts with the same 8,192-token document (16 blocks) and asks its own ~1,000-token question."""
    fresh = synthetic_lengths(n, 4, 1000, 300)
    inputs = fresh.input + 8192
    hashes, next_id = [], 16
    for question in fresh.input:
        blocks = -(-int(question) // 512)
        hashes.append((*range(16), *range(next_id, next_id + blocks)))
        next_id += blocks
    return Lengths(inputs, fresh.output, tuple(hashes))


def test_a_shared_document_in_the_prefix_cache_is_read_as_a_share_of_every_prompt() -> None:
    """One L40S replica, Poisson arrivals for 20 minutes, every request starting with the same document: the model
    reads the measured token share cached as that share of every prompt and agrees with the simulator to 2 points
    (uncached, the 9,000-token prompts would be late on an L40S)."""
    rng = np.random.default_rng(2)
    duration, rate = 1200.0, 0.1
    lengths = shared_document(int(rng.poisson(rate * duration)), rng)
    arrival = np.sort(np.random.default_rng(5).random(len(lengths.input)) * duration)
    simulated, replica = replayed(Requests(arrival, lengths), rate, duration)
    cached = replica.prefix_hits / replica.prefix_queries
    n = len(lengths.input)
    exact = ttft.Prompts(tuple(float(k) for k in lengths.input), (1 / n,) * n)
    request = ttft.Request(float(lengths.input.mean()), 300, cached)
    assert cached > 0.8 and simulated > 0.98
    assert ttft.share_within(L40S, exact, request, rate, 2.0) == pytest.approx(simulated, abs=0.02)
