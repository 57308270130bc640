"""TPOT under other prompts' chunked prefill: how much load a replica takes before the prompt chunks that run during
its requests' few decode iterations push more than the allowed share of them past the TPOT objective.

vLLM V1 fills each iteration's token budget `B` with prompt chunks after the decodes, so while a replica prefills a
prompt of `u` uncached tokens its decodes wait `u / B` iterations that each carry up to `B` prompt tokens and take
`e = k_tok * B` longer than a decode-only one (0.6-0.7 s on the profiles' L40S and H100: six times a 100 ms
objective). A request of `g` decode gaps (its output tokens less one) averages its `g` iterations, so it misses when
chunks fill more than `kappa = g * (objective - ITL) / e` of them. A prompt of `n = u / B` chunk iterations that
starts at one of the request's plain iterations overlaps more than `kappa` of its `g` from `g + n - 2 kappa` starting
positions (none when `n` or `g` is at most `kappa`), and prompts start at `lambda * ITL` per plain iteration. A
request of `g` gaps misses with probability `min(1, lambda * ITL * sum_prompts w * (g + n - 2 kappa)+)`; the share
missing is its mean over the output lengths (vLLM's `request_generation_tokens` histogram).

The engine's TPOT plan (the z-quantile of the load a mean request averages over its decode) holds where prompts are
short against the budget or outputs long; this bound is the one that binds where long prompts meet short outputs.
Checked against the per-request simulator at steady load: on Mooncake's lengths on H100, 1.02% of requests miss
TPOT at the rate it gives, in a pool of 20 replicas (the engine's plan alone: 1.62% in a pool of 16); it does not
see routing, so it is cautious where idle replicas take the prompts (coding lengths on L40S: 0.21 req/s against
0.51 measured in a pool of 16) and optimistic in small pools.
"""

import bisect
import math
from dataclasses import dataclass

from autoscaler.accelerators import TokenProfile
from autoscaler.ttft import Prompts

# A capacity is found to this share of the utilization it is searched under, or where the share missing is within
# this share of the allowed one: both well within what the model can tell.
PRECISION = 1 / 256
TOLERANCE = 0.02


@dataclass(frozen=True)
class Chunks:
    """What a replica's decodes meet: the model's prompts as the tokens its prefix cache does not serve, ascending,
    with from each position on the sum of their weights and of their weighted tokens (the prompts longer than a
    length are read with one bisection, for every profile); and its requests' output tokens with their weights."""

    uncached: tuple[float, ...]
    above: tuple[float, ...]
    above_tokens: tuple[float, ...]
    outputs: Prompts

    @staticmethod
    def of(prompts: Prompts, outputs: Prompts, cached_share: float = 0.0) -> "Chunks":
        pairs = sorted((t * (1 - cached_share), w) for t, w in zip(prompts.tokens, prompts.weights, strict=True))
        above = [0.0] * (len(pairs) + 1)
        above_tokens = [0.0] * (len(pairs) + 1)
        for k in range(len(pairs) - 1, -1, -1):
            u, w = pairs[k]
            above[k] = above[k + 1] + w
            above_tokens[k] = above_tokens[k + 1] + w * u
        return Chunks(tuple(u for u, _ in pairs), tuple(above), tuple(above_tokens), outputs)


def share_missing(p: TokenProfile, chunks: Chunks, rate: float, utilization: float, objective_s: float) -> float:
    """The share of requests whose TPOT misses the objective on a replica taking `rate` requests/s at `utilization`
    (ITL = t0 / (1 - utilization)), from other prompts' chunks alone."""
    if rate <= 0.0:
        return 0.0
    itl = p.t0_s / (1 - utilization)
    slack = objective_s - itl
    if slack <= 0.0:
        return 1.0
    budget = p.max_num_batched_tokens
    tolerated = slack / (p.k_tok_s * budget)  # kappa per gap: a full chunk adds k_tok * B to an iteration
    starts = rate * itl  # prompts starting per plain iteration
    uncached, above, above_tokens, find = chunks.uncached, chunks.above, chunks.above_tokens, bisect.bisect_right
    share = 0.0
    for tokens, weight in zip(chunks.outputs.tokens, chunks.outputs.weights, strict=True):
        gaps = tokens - 1
        kappa = gaps * tolerated
        if gaps <= kappa:
            continue
        first = find(uncached, kappa * budget)  # the prompts of more than kappa chunk iterations
        missing = starts * ((gaps - 2 * kappa) * above[first] + above_tokens[first] / budget)
        share += weight * (missing if missing < 1.0 else 1.0)
    return share


def utilization_within(
    p: TokenProfile, chunks: Chunks, work_s: float, objective_s: float, allowed: float, highest: float
) -> float:
    """The highest utilization up to `highest` at which at most `allowed` of the requests miss the objective from
    other prompts' chunks, a replica's request rate being utilization / `work_s`."""

    def missing(u: float) -> float:
        return share_missing(p, chunks, u / work_s, u, objective_s)

    # The share missing rises with the utilization about as a power of it (prompts start in proportion to it, and
    # the slack shrinks as ITL grows): a secant in log-log through the last two points, kept inside the bracket
    # (halved where it cannot be drawn), meets the allowed share in a few evaluations.
    low, high = 0.0, highest
    last = (highest, missing(highest))
    if last[1] <= allowed:
        return highest
    before: tuple[float, float] | None = None
    while high - low > PRECISION * highest:
        u = (low + high) / 2
        if before is not None and before[1] > 0.0 and last[1] > 0.0 and before[0] != last[0]:
            k = math.log(last[1] / before[1]) / math.log(last[0] / before[0])
            if k > 0:
                step = PRECISION * highest / 2
                u = min(max(last[0] * (allowed / last[1]) ** (1 / k), low + step), high - step)
        m = missing(u)
        if m <= allowed:
            low = u
        else:
            high = u
        before, last = last, (u, m)
        if abs(m - allowed) <= allowed * TOLERANCE:
            return u
    return max(low, PRECISION * highest)
