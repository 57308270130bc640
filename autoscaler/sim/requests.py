"""The per-request serving model: vLLM V1's continuous batching with chunked prefill, on each replica.

Every iteration schedules at most `max_num_batched_tokens` tokens: one for each decoding request first, then chunks of
the admitted prompts in arrival order in what is left, so a long prompt is prefilled over several iterations and a
decode is slowed by a chunk, never stalled by a whole prompt. An iteration takes `t0 + k_tok * tokens + k_kv *
kv_tokens`. A request is admitted while the batch (`max_num_seqs`) and the KV-cache have room for its prompt and
output, so nothing is preempted. TTFT is the queue wait plus every iteration up to its last prompt chunk.

The replica runs iterations of the same make-up together: a run ends when a prompt's last chunk is done, a
decode finishes, a routed request arrives or the simulation step ends, so the make-up of every iteration is exact
and a step costs a few runs, not one loop per iteration. A replica's clock may pass the step's end by less than
one iteration (an iteration is never split).

Prefix caching, for traces with block hashes: a finished request's blocks stay cached in the KV capacity its
running requests leave free, evicted least recently used; a new prompt skips the prefill of its longest cached
prefix (one token is always computed, as in vLLM).
"""

import heapq
import itertools
import math
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from autoscaler.accelerators import TokenProfile
from autoscaler.sim.serving import LENGTH_EDGES, Outcome, Replica, Routing, Slo, length_bucket
from autoscaler.sim.traces import HASH_BLOCK_TOKENS, Lengths, Requests

STEP_S = 1.0
# The endpoint picker's saturation detector (Gateway API Inference Extension defaults): with flow control on, a
# request waits in the picker's queue while every replica has this many waiting requests or this KV-cache use.
PICKER_QUEUE_DEPTH, PICKER_KV_USAGE = 5, 0.8
# Prefix-aware routing: the share of a prompt cached on a replica against its load (0 least, 1 most loaded).
PREFIX_WEIGHT, LOAD_WEIGHT = 1.0, 1.0


@dataclass
class _Prompt:
    index: int
    left: int  # prompt tokens still to prefill
    computed: int  # prompt tokens to prefill in all: the prompt less its cached prefix
    started: float = -1.0  # when its first chunk was scheduled (vLLM's prefill time runs from there)


class RequestReplica:
    def __init__(
        self, profile: TokenProfile, speed: float, slo: Slo, trace: Requests, ttft: np.ndarray, tpot: np.ndarray
    ) -> None:
        self.profile = profile
        self.speed = speed  # tokens/s this replica serves within the SLO
        self.slo = slo
        self.trace = trace
        self.inputs, self.outputs = trace.lengths.input, trace.lengths.output
        self.hashes = trace.lengths.hashes
        self.ttft, self.tpot = ttft, tpot
        self.clock = 0.0
        self.iterations = 0  # iterations run so far: a decode finishes at a known count
        self.queue: deque[int] = deque()  # routed, not admitted
        self.prompts: deque[_Prompt] = deque()  # admitted, prefilling, in arrival order
        self.prompt_tokens = 0  # what is left of them
        self.decoding: list[tuple[int, int, float]] = []  # heap of (finishing iteration, index, first token time)
        self.reserved = 0  # KV tokens the admitted requests may grow to, beyond the cached prefixes they share
        self.shared: dict[int, int] = {}  # per admitted request, the tokens of its cached prefix
        self.kv = 0.0  # KV tokens in use
        self.cache: OrderedDict[int, None] = OrderedDict()  # cached prefix blocks of finished requests, LRU first
        self.outstanding_tokens = 0.0
        self.completed = 0.0
        self.itl_sum = 0.0
        self.tokens = 0.0
        self.tpot_met = 0.0
        self.prefix_queries = 0.0  # vllm:prefix_cache_queries_total (tokens)
        self.prefix_hits = 0.0  # vllm:prefix_cache_hits_total (tokens)
        self.iteration_tokens_max = 0  # the most tokens one iteration scheduled (vllm:iteration_tokens_total)
        self.prompt_counts = np.zeros(len(LENGTH_EDGES) + 1)
        self.generation_counts = np.zeros(len(LENGTH_EDGES) + 1)
        self.prompt_sum = 0.0
        self.generation_sum = 0.0
        self.ttft_met = 0.0
        self.prefill_sum = 0.0  # vllm:request_prefill_time_seconds_sum (counted at the first token)
        self.prefill_count = 0.0

    def kv_usage(self) -> float:
        return min(1.0, max(0.0, self.kv / self.profile.kv_capacity))

    def waiting(self) -> float:
        return float(len(self.queue))

    def running(self) -> int:
        return len(self.prompts) + len(self.decoding)

    def idle(self) -> bool:
        return not self.queue and not self.prompts and not self.decoding

    def outstanding_s(self) -> float:
        """Work queued on this replica, in seconds at its speed within the SLO: what least-work routing compares, so
        a pool of different GPUs is loaded in proportion to what each serves within the SLO."""
        return self.outstanding_tokens / self.speed

    def cached_tokens(self, index: int) -> int:
        """Prompt tokens of a request this replica holds cached (its longest cached prefix of whole blocks)."""
        if self.hashes is None:
            return 0
        blocks = 0
        for h in self.hashes[index]:
            if h not in self.cache:
                break
            blocks += 1
        return min(blocks * HASH_BLOCK_TOKENS, int(self.inputs[index]) - 1)

    def add(self, index: int) -> None:
        self.queue.append(index)
        self.outstanding_tokens += int(self.inputs[index] + self.outputs[index])

    def step(self, t: float, dt: float) -> None:
        """Run iterations until the replica's clock reaches the end of the step."""
        p, arrival = self.profile, self.trace.arrival_s
        end = t + dt
        self.clock = max(self.clock, t)
        while self.clock < end:
            self._admit()
            decodes, prompt_tokens = len(self.decoding), self.prompt_tokens
            if not decodes and not prompt_tokens:
                if not self.queue or arrival[self.queue[0]] >= end:
                    self.clock = end
                    return
                self.clock = max(self.clock, float(arrival[self.queue[0]]))
                continue
            chunk = min(max(0, p.max_num_batched_tokens - decodes), prompt_tokens)
            iteration = p.iteration_s(decodes + chunk, self.kv)
            runs = math.ceil((end - self.clock) / iteration)
            if chunk:
                # Full chunks up to the head prompt's last one; a last partial chunk takes a run of its own.
                full = (
                    1
                    if chunk == prompt_tokens
                    else min(math.ceil(self.prompts[0].left / chunk), prompt_tokens // chunk)
                )
                runs = min(runs, full)
            if decodes:
                runs = min(runs, self.decoding[0][0] - self.iterations)
            if self.queue and self.running() < p.max_num_seqs and arrival[self.queue[0]] > self.clock:
                runs = min(runs, math.ceil((float(arrival[self.queue[0]]) - self.clock) / iteration))
            self._run(max(1, runs), decodes, chunk, iteration)

    def _admit(self) -> None:
        p, arrival = self.profile, self.trace.arrival_s
        while self.queue and self.running() < p.max_num_seqs and arrival[self.queue[0]] <= self.clock:
            i = self.queue[0]
            # A cached prefix is shared, as vLLM shares its blocks between the requests that use it: counted once,
            # as part of the cache, not in each request's KV.
            cached = self.cached_tokens(i)
            need = int(self.inputs[i] + self.outputs[i]) - cached
            if self.reserved + need > p.kv_capacity and self.running():
                return
            self.queue.popleft()
            self._touch(i, cached)
            self.shared[i] = cached
            self.prefix_queries += int(self.inputs[i])
            self.prefix_hits += cached
            self.outstanding_tokens -= cached
            self.reserved += need
            self._evict()
            self.prompts.append(_Prompt(i, int(self.inputs[i]) - cached, int(self.inputs[i]) - cached))
            self.prompt_tokens += int(self.inputs[i]) - cached

    def _run(self, runs: int, decodes: int, chunk: int, iteration: float) -> None:
        """`runs` iterations of `decodes` decode tokens and `chunk` prompt tokens each."""
        start = self.clock
        self.clock += runs * iteration
        self.iterations += runs
        self.iteration_tokens_max = max(self.iteration_tokens_max, decodes + chunk)
        generated = decodes * runs
        self.kv += generated
        self.tokens += generated
        self.itl_sum += generated * iteration
        self.outstanding_tokens -= generated
        if chunk:
            self._prefill(runs * chunk, start, iteration)
        while self.decoding and self.decoding[0][0] <= self.iterations:
            done, i, first = heapq.heappop(self.decoding)
            self._finish(i, first, start + (done - (self.iterations - runs)) * iteration)

    def _prefill(self, tokens: int, start: float, iteration: float) -> None:
        """Spend `tokens` on the prompts in order; a prompt whose last chunk ran yields its first token now. The run
        began at `start`: the head prompt got tokens from then, a prompt after it only in the run's last iteration."""
        self.prompt_tokens -= tokens
        self.outstanding_tokens -= tokens
        first = True
        while tokens and self.prompts:
            head = self.prompts[0]
            if head.started < 0:
                head.started = start if first else self.clock - iteration
            first = False
            used = min(head.left, tokens)
            head.left -= used
            tokens -= used
            if head.left:
                break
            self.prompts.popleft()
            self.prefill_sum += self.clock - head.started
            self.prefill_count += 1
            i = head.index
            self.kv += head.computed
            self.ttft[i] = self.clock - self.trace.arrival_s[i]
            self.outstanding_tokens -= 1  # the last chunk also yields the first output token
            left = int(self.outputs[i]) - 1
            if left:
                heapq.heappush(self.decoding, (self.iterations + left, i, self.clock))
            else:
                self._finish(i, self.clock, self.clock)

    def _finish(self, index: int, first_token_s: float, finish_s: float) -> None:
        decoded = int(self.outputs[index]) - 1
        self.tpot[index] = (finish_s - first_token_s) / decoded if decoded > 0 else 0.0
        self.tpot_met += self.tpot[index] <= self.slo.tpot_s
        self.ttft_met += self.ttft[index] <= self.slo.ttft_s
        self.completed += 1
        self.prompt_counts[length_bucket(float(self.inputs[index]))] += 1
        self.generation_counts[length_bucket(float(self.outputs[index]))] += 1
        self.prompt_sum += float(self.inputs[index])
        self.generation_sum += float(self.outputs[index])
        shared = self.shared.pop(index)
        self.reserved -= int(self.inputs[index] + self.outputs[index]) - shared
        self.kv -= int(self.inputs[index]) - shared + decoded
        if self.hashes is not None:
            for h in self.hashes[index]:
                self.cache[h] = None
                self.cache.move_to_end(h)
            self._evict()

    def _touch(self, index: int, cached: int) -> None:
        """Mark the `cached` tokens of a prompt's prefix recently used."""
        if cached and self.hashes is not None:
            for h in self.hashes[index][: -(-cached // HASH_BLOCK_TOKENS)]:
                self.cache.move_to_end(h)

    def _evict(self) -> None:
        room = max(0, self.profile.kv_capacity - self.reserved) // HASH_BLOCK_TOKENS
        while len(self.cache) > room:
            self.cache.popitem(last=False)


class RequestWorkload:
    """Replays every request of a trace; requests wait at the router while no replica serves (with an endpoint
    picker's flow control, also while every replica is saturated). Requests longer than the model's context are
    refused at once, as vLLM refuses them (HTTP 400)."""

    step_s = STEP_S

    def __init__(
        self,
        trace: Requests,
        slo: Slo,
        routing: Routing,
        context_tokens: int | None = None,
        flow_control: bool = False,
        seed: int = 0,
    ) -> None:
        self.trace = trace
        self.rng = np.random.default_rng(seed)  # the router's tie-breaks
        self.flow_control = flow_control  # requests wait at the picker while every replica is saturated
        self.slo = slo
        self.routing = routing
        self.duration_s = trace.duration_s
        self.mean_in, self.mean_out = float(trace.lengths.input.mean()), float(trace.lengths.output.mean())
        n = len(trace.arrival_s)
        self.ttft = np.full(n, np.nan)
        self.tpot = np.full(n, np.nan)
        self.refused = refused(trace.lengths, context_tokens)
        # What the servers serve, and so what replicas are sized and weighed by.
        self.population = trace.lengths.pick(np.nonzero(~self.refused)[0]) if self.refused.any() else trace.lengths
        self.next = 0
        self.held: deque[int] = deque()
        self.turn = itertools.count()

    def new_replica(self, profile: TokenProfile, slo_rate: float) -> RequestReplica:
        speed = slo_rate * (self.mean_in + self.mean_out)
        return RequestReplica(profile, speed, self.slo, self.trace, self.ttft, self.tpot)

    def step(self, t: float, serving: list[Replica], draining: list[Replica]) -> None:
        live = [r for r in serving if isinstance(r, RequestReplica)]
        for r in draining:
            if isinstance(r, RequestReplica):
                self.held.extend(r.queue)
                r.outstanding_tokens -= sum(int(r.inputs[i] + r.outputs[i]) for i in r.queue)
                r.queue.clear()
        end = int(np.searchsorted(self.trace.arrival_s, t + self.step_s, side="left"))
        self.held.extend(i for i in range(self.next, end) if not self.refused[i])
        self.next = end
        while self.held:
            open_ = [r for r in live if not self._saturated(r)]
            if not open_:
                break
            i = self.held.popleft()
            self._pick(open_, i).add(i)
        for r in [*serving, *draining]:
            if isinstance(r, RequestReplica):
                r.step(t, self.step_s)

    def _saturated(self, replica: RequestReplica) -> bool:
        if not self.flow_control:
            return False
        return replica.waiting() >= PICKER_QUEUE_DEPTH or replica.kv_usage() >= PICKER_KV_USAGE

    def _pick(self, live: list[RequestReplica], index: int) -> RequestReplica:
        if self.routing == "round-robin":
            return live[next(self.turn) % len(live)]
        if self.routing == "prefix-aware" and self.trace.lengths.hashes is not None and len(live) > 1:
            loads = [r.outstanding_s() for r in live]
            low, spread = min(loads), max(loads) - min(loads)
            prompt = max(1, int(self.trace.lengths.input[index]))

            def cost(k: int) -> float:
                load = (loads[k] - low) / spread if spread > 0 else 0.0
                return LOAD_WEIGHT * load - PREFIX_WEIGHT * live[k].cached_tokens(index) / prompt

            return live[self._lowest([cost(k) for k in range(len(live))])]
        return live[self._lowest([r.outstanding_s() for r in live])]

    def _lowest(self, costs: list[float]) -> int:
        """The position of the lowest cost, ties broken at random as the endpoint picker breaks them (its max-score
        picker shuffles the candidates first): in a fixed order the first pod, often the oldest, would get every
        request that arrives while the pool is idle, its prefix cache with them."""
        low = min(costs)
        ties = [k for k, c in enumerate(costs) if c == low]
        return ties[0] if len(ties) == 1 else ties[int(self.rng.integers(len(ties)))]

    def outcome(self) -> Outcome:
        done = ~np.isnan(self.tpot)
        ok = done & (self.ttft <= self.slo.ttft_s) & (self.tpot <= self.slo.tpot_s)
        ttft, tpot = self.ttft[done], self.tpot[done]
        refused = int(self.refused.sum())
        return Outcome(
            requests=len(self.ttft),
            ok=float(ok.sum()),
            dropped=float((~done).sum()) - refused,
            ttft_p99_s=float(np.percentile(ttft, 99)) if len(ttft) else math.nan,
            tpot_p99_s=float(np.percentile(tpot, 99)) if len(tpot) else math.nan,
            refused=float(refused),
        )

    def waiting_upstream(self) -> float:
        return float(len(self.held))

    def demand(self, window_s: float) -> list[float]:
        bins = math.ceil(self.duration_s / window_s)
        counts = np.bincount((self.trace.arrival_s // window_s).astype(np.int64), minlength=bins)
        return [float(c) / window_s for c in counts]

    @property
    def lengths(self) -> Lengths:
        return self.population


def refused(lengths: Lengths, context_tokens: int | None) -> np.ndarray:
    """Which requests vLLM refuses: prompt plus output over the model's context (the trace's output length is the
    least the client asked for)."""
    if not context_tokens:
        return np.zeros(len(lengths.input), dtype=bool)
    return np.asarray(lengths.input + lengths.output > context_tokens)
