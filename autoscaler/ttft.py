"""Time to first token at load: the queue wait plus the chunked prefill of each prompt, for a pool of replicas.

vLLM V1 schedules a replica's decodes first and fills the rest of the token budget with prompt chunks in arrival
order, so each replica prefills its prompts one after the other, as a single server of prompt tokens:

- a prompt of `u` tokens not found in the prefix cache takes `ceil(u / (B - d))` iterations of `t0 + k_tok * B +
  k_kv * kv` (the budget `B` less the `d` decodes of the batch, which also read `kv` cached tokens);
- its wait is that of an M/G/c queue (c replicas behind a router that sends each request to the least loaded,
  close to one shared queue): the probability of waiting is Erlang's C and the wait, once waiting, is exponential
  with the mean of the Allen-Cunneen approximation (the M/M/c wait scaled by the prompts' own spread).

Checked against the per-request simulator at steady Poisson load (1 and 4 replicas; conversation, coding,
summarization and Mooncake lengths; L40S and H100): within 2 points of the simulated share, and at most 2.5 points
below it (conservative) where they differ.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.accelerators import TokenProfile

# A bucket of vLLM's prompt-length histogram (1-2-5 edges) is read as this many lengths spread evenly in log scale
# between its edges.
POINTS_PER_BUCKET = 8
# A capacity is found to this share of the rate it is searched under.
PRECISION = 1 / 1024


@dataclass(frozen=True)
class Prompts:
    """A model's prompts as lengths with weights summing to 1 (plain floats: the controller's image has no numpy)."""

    tokens: tuple[float, ...]
    weights: tuple[float, ...]


def prompts_of(cumulative: Mapping[float, float], points_per_bucket: int = POINTS_PER_BUCKET) -> Prompts | None:
    """The prompts of vLLM's `request_prompt_tokens` histogram (cumulative, `inf` included), or the outputs of its
    `request_generation_tokens` (the same 1-2-5 edges); None when empty. The open last bucket is read at its lower
    edge."""
    edges = sorted(cumulative)
    total = cumulative.get(math.inf, 0.0)
    if not total > 0:
        return None
    tokens: list[float] = []
    weights: list[float] = []
    steps = tuple((k + 0.5) / points_per_bucket for k in range(points_per_bucket))
    low, below = 0.0, 0.0
    for le in edges:
        count = cumulative[le] - below
        below = cumulative[le]
        if count > 0:
            points = _spread(low, le, steps)
            tokens.extend(points)
            weights.extend([count / total / len(points)] * len(points))
        low = le
    return Prompts(tuple(tokens), tuple(weights))


def _spread(low: float, high: float, steps: tuple[float, ...]) -> list[float]:
    if math.isinf(high):
        return [max(low, 1.0)]
    if low < 1.0:
        return [high]
    return [low * (high / low) ** step for step in steps]


@dataclass(frozen=True)
class Request:
    """The mean request the load is made of: prompt and output tokens and the share of the prompt cached."""

    prompt_tokens: float
    output_tokens: float
    cached_share: float = 0.0


def share_within(
    p: TokenProfile,
    prompts: Prompts,
    request: Request,
    rate: float,
    objective_s: float,
    *,
    replicas: int = 1,
    prefill_factor: float = 1.0,
) -> float:
    """The share of requests whose TTFT meets the objective when each of `replicas` replicas takes `rate`
    requests/s; its prefill times scaled by `prefill_factor` (measured over modelled)."""
    service = prefill_times(p, prompts, request, rate, factor=prefill_factor)
    # One pass over the prompts for the moments the queue needs and the share an idle pool would reach: a pass
    # plans this for every variant of every model, several times.
    mean = second = idle = 0.0
    for x, t in zip(prompts.weights, service, strict=True):
        mean += x * t
        second += x * t * t
        if t <= objective_s:
            idle += x
    busy = rate * mean  # the share of time each replica is prefilling
    if busy >= 1.0:
        return 0.0
    waiting = erlang_c(replicas, replicas * busy)
    if waiting <= 0.0:
        return idle
    once_waiting_s = second / (2 * mean) / (replicas * (1 - busy))
    exp = math.exp
    return idle - waiting * sum(
        x * exp((t - objective_s) / once_waiting_s)
        for x, t in zip(prompts.weights, service, strict=True)
        if t <= objective_s
    )


def prefill_times(
    p: TokenProfile,
    prompts: Prompts,
    request: Request,
    rate: float,
    itl_s: float | None = None,
    factor: float = 1.0,
) -> list[float]:
    """Each prompt's prefill on a replica taking `rate` requests/s, times `factor`: its iterations share the budget
    with the decodes of the batch there (Little: rate x output tokens x ITL, at the measured ITL where given, else
    at ITL = t0 / (1 - utilization)); infinite past the replica's capacity or where its decodes leave no budget."""
    r = request
    utilization = 0.0 if itl_s else rate * p.work_s(r.prompt_tokens, r.output_tokens, r.cached_share)
    itl = itl_s or p.t0_s / (1 - utilization or 1.0)
    decodes = min(float(p.max_num_seqs), rate * r.output_tokens * itl)
    budget = p.max_num_batched_tokens - decodes
    if utilization >= 1.0 or budget < 1.0:
        return [math.inf] * len(prompts.tokens)
    fixed = (p.t0_s + p.k_tok_s * decodes + p.k_kv_s * decodes * (r.prompt_tokens + r.output_tokens / 2)) * factor
    k_tok, uncached, ceil = p.k_tok_s * factor, 1 - r.cached_share, math.ceil
    return [(ceil(u / budget) or 1) * fixed + k_tok * u for n in prompts.tokens for u in (n * uncached,)]


def mean_prefill_s(
    p: TokenProfile, prompts: Prompts, request: Request, rate: float, itl_s: float | None = None
) -> float:
    """The mean prefill time (first chunk to first token, no queue wait) on a replica taking `rate` requests/s,
    with its measured ITL where given (what a correction compares the measured prefill time with)."""
    return sum(w * t for w, t in zip(prompts.weights, prefill_times(p, prompts, request, rate, itl_s), strict=True))


def erlang_c(servers: int, load: float) -> float:
    """The probability that a request waits in an M/M/c queue with `load` = arrival rate x service time (< c),
    by Erlang's B recursion (stable for any number of servers)."""
    if load <= 0.0:
        return 0.0
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
        if k > load and b < 1e-12:  # it only falls from here: no request waits, to any precision that matters
            return 0.0
    busy = load / servers
    return min(1.0, b / (1 - busy * (1 - b)))


def capacity(
    p: TokenProfile,
    prompts: Prompts,
    request: Request,
    objective_s: float,
    goal: float,
    *,
    within_rps: float,
    replicas: int = 1,
    prefill_factor: float = 1.0,
) -> float:
    """The highest rate per replica, up to `within_rps`, at which the share of TTFT within the objective is at least
    `goal` (the share falls with the rate); 0 when even an idle replica misses it, else at least the search's
    precision."""

    def meets(rate: float) -> bool:
        share = share_within(p, prompts, request, rate, objective_s, replicas=replicas, prefill_factor=prefill_factor)
        return share >= goal

    if meets(within_rps):
        return within_rps
    low, high = 0.0, within_rps
    if not meets(low):
        return 0.0
    while high - low > PRECISION * within_rps:
        mid = (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return max(low, PRECISION * within_rps)
