"""Pure scaling decisions: (variants, thresholds, samples, replica state, memory, clock) -> targets and a reason.

No I/O: the controller in the cluster and the simulator call the same `decide`, so the benchmark measures the code
that runs in production. Two modes:

- `wva-v1`: the seed's algorithm exactly (REFERENCE section 7): +-1 replica per cycle on the saturation signal.
- `default`: plans a mix of variants that serves the measured demand (and a steady rise over a cold start) for
  99% of requests within the latency SLO. A replica's capacity comes from its token profile and the model's
  measured request shape (prompt and output tokens, prefix-cache hits), with the work per request corrected online
  from inter-token latency; it is planned at the p99 of a request's TPOT and raised where vLLM's per-request TPOT
  histogram shows room, and bound where the TTFT at load (`ttft.py`, with a correction from measured prefill time)
  would miss the objective for more than a point of the prompts a replica can serve; variants are ranked by cost per
  unit of capacity, grown by the best value and shrunk by the worst. It steps to the plan at once,
  counts pending replicas as supply, brings variants up from zero, scales down only as far as the ready replicas
  left keep the most capacity the window's plans asked for (replicas of a variant held at its minimum go as soon
  as the ready replicas left serve the plan), and keeps the seed's saturation analysis as a guardrail.

Both hold replicas, and never scale down, when metrics are missing, stale or contradictory.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from autoscaler import tpot, ttft
from autoscaler.accelerators import PRIOR_OUTPUT_TOKENS, PRIOR_PROMPT_TOKENS, TokenProfile
from autoscaler.api import DEFAULT_HEADROOM, Thresholds
from autoscaler.buckets import share_within
from autoscaler.planner import Option, best_value_growth, cheapest_mix
from autoscaler.saturation import Load, analyze

Mode = Literal["default", "wva-v1"]
SAMPLE_WINDOW_S = 60.0  # a replica sample's rates, means and peaks are read over this window
# vLLM's output-length buckets (1-2-5 edges) are read at one length each, the middle in log scale: the TPOT bound of
# short outputs evaluates every one for every variant of every model, several times a pass.
OUTPUT_POINTS_PER_BUCKET = 1
Action = Literal["scale-up", "scale-down", "rebalance", "none", "hold"]


@dataclass(frozen=True)
class VariantSpec:
    """A variant with the token profile of one of its replicas, before anything is learned."""

    name: str
    cost: float
    min_replicas: int
    max_replicas: int
    profile: TokenProfile
    cold_start_s: float | None = None  # prior: creation to Ready of a replica, until one is seen


@dataclass(frozen=True)
class Shape:
    """A model's requests: mean prompt and output tokens, and the share of prompt tokens its prefix cache served.
    The default is the prior, the mix the profiles were checked on, until the model's own is measured."""

    prompt_tokens: float = PRIOR_PROMPT_TOKENS
    output_tokens: float = PRIOR_OUTPUT_TOKENS
    cached_share: float = 0.0
    requests: float = 0.0  # finished requests it was measured from (0: the prior)

    def request(self) -> ttft.Request:
        """The mean request the TTFT model plans with."""
        return ttft.Request(self.prompt_tokens, self.output_tokens, self.cached_share)

    def describe(self) -> str:
        measured = f"over {self.requests:.0f} requests" if self.requests else "prior"
        return f"{self.prompt_tokens:.0f}/{self.output_tokens:.0f} tokens, {self.cached_share:.0%} cached ({measured})"


@dataclass(frozen=True)
class VariantStatus:
    """Replica counts of a variant's Deployment: spec (desired), status (current) and ready; and its pods the
    scheduler cannot place (no node with a free GPU of the type), with the scheduler's message."""

    name: str
    desired: int
    current: int
    ready: int
    unschedulable: int = 0  # pods the scheduler cannot place now
    scheduler_message: str | None = None
    stuck: int = 0  # pods that stopped counting as supply: Unschedulable for longer than a node takes to add
    starting_s: tuple[float, ...] = ()  # placed pods not ready yet: how long each has existed
    cold_start_s: float | None = None  # its ready pods: the median time from creation to Ready


@dataclass(frozen=True)
class ReplicaSample:
    """One live replica's metrics over the last minute (`SAMPLE_WINDOW_S`: peaks for KV and queue, rates and means for
    the rest)."""

    variant: str
    pod: str
    kv: float
    queue: float
    throughput: float  # requests/s completed
    itl_s: float | None  # mean inter-token latency; None when it generated nothing
    # Requests finished over the feedback window, and those among them whose own TPOT met the objective (vLLM's
    # per-request TPOT histogram); None when the replica does not export it.
    tpot_requests: float | None = None
    tpot_met: float | None = None
    prefill_s: float | None = None  # mean prefill time of its requests over the minute (vLLM's histogram)


@dataclass(frozen=True)
class Observation:
    samples: tuple[ReplicaSample, ...]
    sample_age_s: float | None  # age of the newest sample; None when Prometheus returned no series
    requests_in_retention: float | None  # requests completed over the retention window; None when unknown
    # Requests waiting for the model before any replica (its endpoint picker's flow-control queue); None without
    # such a signal. At zero replicas it is the only thing that wakes a model.
    waiting_upstream: float | None = None
    # The model's prompts finished over the feedback window, cumulative by prompt length: prompts with <= le tokens
    # by le (vLLM's request_prompt_tokens histogram, inf included); None without it.
    prompt_tokens: Mapping[float, float] | None = None
    shape: Shape | None = None  # the model's requests over the feedback window; None without the histograms
    # The same requests by time to first token, cumulative (vLLM's TTFT histogram, inf included); None without it.
    ttft: Mapping[float, float] | None = None
    # The same by output tokens, cumulative (vLLM's request_generation_tokens histogram); None without it.
    generation_tokens: Mapping[float, float] | None = None

    def wakes(self) -> bool:
        return (self.waiting_upstream or 0.0) > 0 or (self.requests_in_retention or 0.0) > 0


@dataclass(frozen=True)
class Tuning:
    tpot_slo_s: float = 0.1  # the model's inter-token latency objective
    ttft_slo_s: float = 2.0  # the model's time-to-first-token objective
    itl_margin: float = 0.8  # plan replicas to run at most at this fraction of the objective (mean ITL)
    tpot_quantile_z: float = 2.33  # plan the per-request TPOT at this many standard deviations (2.33: p99)
    headroom: float = DEFAULT_HEADROOM  # extra capacity over the measured demand (a model's `headroom`)
    backlog_drain_s: float = 60.0  # a waiting queue counts as demand that must drain in this time
    scale_down_window_s: float = 300.0
    cold_start_s: float = 240.0  # prior: a new replica serves this long after it is requested (the forecast horizon)
    # A placed pod not ready after this many of its variant's cold starts stops counting as supply: a crash loop,
    # an image that does not pull, weights that do not load.
    pending_deadline: float = 2.0
    trend_window_s: float = 300.0  # the demand trend is the Theil-Sen slope over this window
    stale_after_s: float = 60.0
    learn_rate: float = 0.3  # a correction moves this share of the way to each measurement (smoothing)
    min_utilization_to_learn: float = 0.15  # below it, ITL is mostly the fixed iteration cost and says nothing
    # ITL only sees iterations that carry a decode: with a mean decode batch of B (Little: throughput x output
    # tokens x ITL), about e^-B of the time carries none (2% at 4), and the prefills done then are not measured.
    min_decode_batch_to_learn: float = 4.0
    # The profiles are good to +-30-50% (REFERENCE section 9): a measured work per request beyond this factor of
    # the profile's is a measurement fault (another model on the GPU, a broken exporter), not the replica.
    correction_max: float = 2.0
    slo_target: float = 0.99  # share of requests whose TPOT must meet the objective
    feedback_window_s: float = 300.0  # the window the replicas' TPOT counts cover: one correction per window
    feedback_min_requests: float = 200.0  # fewer finished requests in a window say nothing about a 1% tail
    feedback_step: float = 0.1  # a correction changes a variant's planned capacity by this fraction
    feedback_busy: float = 0.85  # raise a capacity only when the variant ran at this share of it or more
    feedback_max: float = 1.4  # measured TPOT may raise a variant's planned capacity up to this factor
    node_allowance_s: float = 300.0  # a pod may wait Unschedulable this long for a node (cluster autoscaler)
    limited_backoff_s: float = 600.0  # a capacity-limited variant is offered more again after this, doubling
    limited_backoff_max_s: float = 3600.0


@dataclass(frozen=True)
class Correction:
    """A variant's measured correction of its planned capacity, and when it last changed."""

    factor: float = 1.0
    at: float = -math.inf


@dataclass(frozen=True)
class Limit:
    """A variant the cluster cannot supply: it is asked for at most what it got plus one until `until`."""

    granted: int  # its replicas that were placed
    until: float
    backoff_s: float
    message: str


@dataclass(frozen=True)
class Memory:
    """What the engine carries between cycles: corrections per variant, the model's shape, recent plans."""

    work: Mapping[str, float] = field(default_factory=dict)  # variants seen busy: measured work per request / profile's
    shape: Shape = Shape()
    corrections: Mapping[str, Correction] = field(default_factory=dict)  # per variant, from measured TPOT
    plans: tuple[tuple[float, Mapping[str, int]], ...] = ()
    demands: tuple[tuple[float, float], ...] = ()  # (time, requests/s served) over the trend window
    limits: Mapping[str, Limit] = field(default_factory=dict)  # capacity-limited variants
    cold_starts: Mapping[str, float] = field(default_factory=dict)  # per variant: the last measured
    prefill: Mapping[str, float] = field(default_factory=dict)  # per variant: measured prefill time / modelled
    # The model's prompt-length histogram (cumulative, `inf` included) of the last window that held enough prompts.
    prompt_tokens: Mapping[float, float] = field(default_factory=dict)
    # The same, averaged over about the time a swap of GPU type takes to pay off (`_prompt_history`), and when.
    prompt_history: Mapping[float, float] = field(default_factory=dict)
    prompt_history_at: float = -math.inf
    # The model's output-length histogram of the last window that held enough requests (as `prompt_tokens`).
    generation_tokens: Mapping[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TtftReading:
    """The model's requests within the TTFT objective over the feedback window, and the share idle prefill allows
    (prompts no variant prefills in time are not a capacity problem). Reported, not acted on: the plan's TTFT rule
    works from the prompts, which say what will come; a window's late requests say what came, and adding a replica
    on them arrives a cold start after the queue that made them (tried: +24% cost on bursts, no attainment)."""

    share: float
    requests: float
    exact: bool  # an edge at the objective; else estimated between its neighbouring edges
    goal: float

    def describe(self, objective_s: float) -> str:
        how = "exact" if self.exact else "estimated between bucket edges"
        return (
            f"TTFT within {objective_s:g}s: {self.share:.1%} of {self.requests:.0f} requests ({how};"
            f" goal {self.goal:.1%})"
        )


@dataclass(frozen=True)
class Decision:
    targets: dict[str, int]
    action: Action
    reason: str
    metrics_available: bool = True
    capacity_rps: Mapping[str, float] = field(default_factory=dict)  # per replica, as planned (default mode)
    limited: Mapping[str, str] = field(default_factory=dict)  # capacity-limited variants: the scheduler's message


def decide(
    mode: Mode,
    variants: Sequence[VariantSpec],
    thresholds: Thresholds,
    status: Mapping[str, VariantStatus],
    observation: Observation,
    memory: Memory,
    now: float,
    tuning: Tuning = Tuning(),
) -> tuple[Decision, Memory]:
    desired = {v.name: status[v.name].desired if v.name in status else v.min_replicas for v in variants}
    problem = _unusable(variants, status, observation, tuning)
    if problem is not None:
        return Decision(desired, "hold", problem, metrics_available=False), memory
    resting = _resting(variants, status, observation, desired)
    if resting is not None:
        return resting, memory
    if mode == "wva-v1":
        return _seed(variants, thresholds, status, observation), memory
    return _default(variants, thresholds, status, observation, memory, now, tuning, desired=desired)


def _resting(
    variants: Sequence[VariantSpec], status: Mapping[str, VariantStatus], obs: Observation, desired: Mapping[str, int]
) -> Decision | None:
    """What both modes do without demand: an idle model goes down to its minimums, one at zero stays there."""
    busy = any(s.kv > 0 or s.queue > 0 or s.throughput > 0 for s in obs.samples)
    idle = obs.requests_in_retention == 0 and not busy and not obs.wakes()
    ready = {n: status[n].ready if n in status else 0 for n in desired}
    if idle and sum(ready.values()) > sum(v.min_replicas for v in variants):
        # Down to the minimums, but a starting replica is never removed as idle: it was started for a demand.
        kept = {v.name: max(v.min_replicas, desired[v.name] - ready[v.name]) for v in variants}
        return _decision(desired, kept, "no requests over the retention window: down to minimums")
    if sum(desired.values()) == 0 and not obs.wakes():
        return Decision(dict(desired), "none", "at zero replicas: no request waiting and none served")
    return None


def _default(
    variants: Sequence[VariantSpec],
    thresholds: Thresholds,
    status: Mapping[str, VariantStatus],
    obs: Observation,
    memory: Memory,
    now: float,
    tuning: Tuning,
    *,
    desired: Mapping[str, int],
) -> tuple[Decision, Memory]:
    """The default mode: plan the variants this pass may use for the measured demand, within the cluster's limits."""
    supply = _supply(variants, status, memory, now, tuning, desired=desired)
    shape = _shape(obs, memory, tuning)
    swap_s = max(supply.cold.values(), default=tuning.cold_start_s) + tuning.scale_down_window_s
    usable = _usable(variants, obs, memory, shape, supply.limits, tuning, now=now, swap_s=swap_s)
    outputs = _full_window(obs.generation_tokens, memory.generation_tokens, tuning)
    chunks = _chunks(usable.prompts, outputs, shape)
    decision, memory = _planned(
        usable.variants,
        thresholds,
        obs,
        memory,
        now,
        tuning,
        desired=supply.placed,
        ready=supply.ready,
        shape=shape,
        cold=supply.cold,
        ttft_plan=_TtftPlan(usable.configured, usable.prefill, usable.prompts, usable.ttft_shares, usable.slow),
        chunks=chunks,
    )
    decision = _within_limits(decision, desired, usable.variants, supply.limits, now)
    reason = decision.reason + f"; shape {shape.describe()}" + _work_note(usable.work) + _prefill_note(usable.prefill)
    ttft = ttft_reading(obs.ttft, usable.ttft_shares, tuning)
    if ttft is not None:
        reason += f"; {ttft.describe(tuning.ttft_slo_s)}"
    if usable.slow:
        reason += _ttft_note(usable.ttft_shares, usable.slow, tuning)
    if usable.waived:
        said = ", ".join(f"{n} {usable.ttft_shares[n]:.1%}" for n in sorted(usable.waived))
        reason += (
            f"; TTFT: this window's prompts only ({said}), not those over the {swap_s:.0f}s a swap takes: not held"
        )
    memory = replace(
        memory,
        limits=supply.limits,
        work=usable.learned,
        shape=shape,
        cold_starts=supply.cold_starts,
        prefill=usable.prefill,
        prompt_tokens=usable.histogram if usable.prompts is not None else memory.prompt_tokens,
        prompt_history=usable.history,
        prompt_history_at=usable.history_at,
        generation_tokens=outputs,
    )
    return replace(decision, reason=reason), memory


@dataclass(frozen=True)
class _Supply:
    """What the cluster gives the model this pass: its variants' cold starts, the limits of those it cannot supply,
    and the replicas placed (asked for, less the stuck) and, of those, ready."""

    cold_starts: Mapping[str, float]  # measured, carried in memory
    cold: Mapping[str, float]  # per variant, as planned: measured, else the model's others', else the prior
    limits: Mapping[str, Limit]
    placed: Mapping[str, int]
    ready: Mapping[str, int]  # of the placed, serving now


def _supply(
    variants: Sequence[VariantSpec],
    status: Mapping[str, VariantStatus],
    memory: Memory,
    now: float,
    tuning: Tuning,
    *,
    desired: Mapping[str, int],
) -> _Supply:
    """A capacity-limited variant is planned with at most what it got plus one; its stuck pods are neither supply
    nor pending replicas, so the plan moves to the next best variant."""
    measured = {**memory.cold_starts, **{n: st.cold_start_s for n, st in status.items() if st.cold_start_s}}
    known = _cold_starts(variants, measured)
    cold = {v.name: known.get(v.name, tuning.cold_start_s) for v in variants}
    status = {n: _past_deadline(st, known[n], tuning) if n in known else st for n, st in status.items()}
    placed = {n: desired[n] - (status[n].stuck if n in status else 0) for n in desired}
    ready = {n: min(placed[n], status[n].ready) if n in status else 0 for n in placed}
    return _Supply(measured, cold, _limits(variants, status, memory, now, tuning), placed, ready)


@dataclass(frozen=True)
class _Usable:
    """The variants as this pass may plan them, and what made them so."""

    variants: list[VariantSpec]
    learned: Mapping[str, float]  # measured work per request over the profile's, of the variants seen busy
    work: Mapping[str, float]  # the factor each variant is planned with
    prefill: Mapping[str, float]  # per variant seen prefilling: measured prefill time over the modelled
    configured: Mapping[str, TokenProfile]  # per variant its profile as configured: what TTFT is planned on
    histogram: Mapping[float, float]  # the prompt histogram the pass reads: this window's, or the last full one
    prompts: ttft.Prompts | None  # the model's prompts, once the window holds enough to read a 1% tail
    history: Mapping[float, float]  # the prompts over about a swap's time (`_prompt_history`)
    history_at: float  # when it last moved
    ttft_shares: Mapping[str, float]
    slow: set[str]  # too slow to prefill the observed prompts in time: held at their minimum
    waived: set[str]  # too slow for this window's prompts, not for those over a swap's time: not held


def _usable(
    variants: Sequence[VariantSpec],
    obs: Observation,
    memory: Memory,
    shape: Shape,
    limits: Mapping[str, Limit],
    tuning: Tuning,
    *,
    now: float,
    swap_s: float,
) -> _Usable:
    """Every variant on its profile corrected by what its replicas measured, for the model's shape; one that cannot
    prefill enough of the observed prompts within the TTFT objective even when idle is held at its minimum, and one
    the cluster cannot supply is limited."""
    learned = _corrections(variants, obs, memory, shape, tuning)
    # TTFT is planned on the profiles as configured, corrected by measured prefill times alone: ITL-read work says
    # how long decodes take, and read past the model (x2 on bursty traffic) it would halve every prefill's budget.
    histogram, fresh = _prompt_histogram(obs, memory, tuning)
    read = ttft.prompts_of(histogram) if histogram else None
    prefill = _prefill_corrections(variants, obs, memory, shape, read or _mean_prompt(shape), tuning)
    # A variant ITL cannot read (its replicas mostly prefill) takes its slower measured prefill as its work factor:
    # its work is mostly prompt tokens. Else the mean of the variants read.
    mean = sum(learned.values()) / len(learned) if learned else 1.0
    work = {v.name: learned.get(v.name, max(1.0, prefill[v.name]) if v.name in prefill else mean) for v in variants}
    corrected = [
        v if work[v.name] == 1.0 else replace(v, profile=_corrected(v.profile, work[v.name])) for v in variants
    ]
    counted = histogram.get(math.inf, 0.0)
    prompts = read if counted >= tuning.feedback_min_requests else None
    shares = ttft_shares(variants, prompts, shape, tuning, prefill)
    slow = _ttft_limited(shares, counted, tuning)
    history, history_at = _prompt_history(histogram if fresh else {}, memory, now, swap_s)
    waived: set[str] = set()
    if slow and history != histogram:
        # A swap of GPU type serves the long prompts a cold start later and bills both types for a scale-down
        # window: held only where the prompts over about that long say so too, not for one window's excursion.
        past = ttft.prompts_of(history)
        waived = slow - _ttft_limited(ttft_shares(variants, past, shape, tuning, prefill), history[math.inf], tuning)
        slow -= waived
    supplied = [_supplied(v, slow, limits) for v in corrected]
    configured = {v.name: v.profile for v in variants}
    return _Usable(
        supplied, learned, work, prefill, configured, histogram, prompts, history, history_at, shares, slow, waived
    )


def _prompt_histogram(obs: Observation, memory: Memory, tuning: Tuning) -> tuple[Mapping[float, float], bool]:
    """The model's prompt lengths over the feedback window once it holds enough prompts to read a 1% tail, and True;
    else the last such window's (as with the shape), so a window thinned by pods whose series went with them, or a
    pass without the histogram, does not forget what the prompts are and release the variants they hold."""
    window = obs.prompt_tokens or {}
    fresh = window.get(math.inf, 0.0) >= tuning.feedback_min_requests
    return _full_window(window, memory.prompt_tokens, tuning) or window, fresh


def _prompt_history(
    window: Mapping[float, float], memory: Memory, now: float, swap_s: float
) -> tuple[Mapping[float, float], float]:
    """The model's prompt histogram averaged over about `swap_s` (exponentially, by the time since it last moved),
    from each pass's full window; restarted where the edges change (another server's buckets)."""
    old = memory.prompt_history
    if not window:
        return old, memory.prompt_history_at
    if not old or set(old) != set(window):
        return dict(window), now
    keep = math.exp(-(now - memory.prompt_history_at) / swap_s)
    return {le: keep * old[le] + (1 - keep) * n for le, n in window.items()}, now


def _cold_starts(variants: Sequence[VariantSpec], measured: Mapping[str, float]) -> dict[str, float]:
    """Each variant's cold start as far as it is known: its pods' (the last measured), else the longest measured on
    the model's other variants (a 70B replica's start is mostly loading its weights, alike on every GPU), else its
    prior in config. Without any of them only the default horizon plans it, and no deadline removes its pods: a
    guess must not remove a replica that is still loading."""
    others = max((measured[v.name] for v in variants if v.name in measured), default=None)
    out = {}
    for v in variants:
        known = measured.get(v.name) or others or v.cold_start_s
        if known is not None:
            out[v.name] = known
    return out


def _past_deadline(st: VariantStatus, cold_start_s: float, tuning: Tuning) -> VariantStatus:
    """The variant's status with its placed pods that are not ready past the deadline counted as stuck."""
    deadline = tuning.pending_deadline * cold_start_s
    late = sum(1 for age in st.starting_s if age > deadline)
    if not late:
        return st
    message = st.scheduler_message or (
        f"{late} pod(s) not ready after {deadline:.0f}s ({tuning.pending_deadline:g}x the {cold_start_s:.0f}s"
        " cold start)"
    )
    return replace(st, stuck=st.stuck + late, scheduler_message=message)


def ttft_reading(ttft: Mapping[float, float] | None, shares: Mapping[str, float], tuning: Tuning) -> TtftReading | None:
    """The TTFT share over the window, once it holds enough requests to say anything about a 1% tail."""
    if not ttft or ttft.get(math.inf, 0.0) < tuning.feedback_min_requests:
        return None
    read = share_within(ttft, tuning.ttft_slo_s)
    if read is None:
        return None
    return TtftReading(read[0], ttft[math.inf], read[1], _ttft_goal(shares, tuning))


def _shape(obs: Observation, memory: Memory, tuning: Tuning) -> Shape:
    """The model's shape over the feedback window, once it holds enough requests to say anything; else the last one
    measured (the prior before any)."""
    if obs.shape is not None and obs.shape.requests >= tuning.feedback_min_requests:
        return obs.shape
    return memory.shape


def _corrections(
    variants: Sequence[VariantSpec], obs: Observation, memory: Memory, shape: Shape, tuning: Tuning
) -> dict[str, float]:
    """Per variant, the work per request its replicas measured over what its profile expects for the shape (the
    correction factor of NVIDIA Dynamo's SLA planner): a replica's utilization is read from its inter-token latency
    (ITL = t0 / (1 - utilization)), its work per request is utilization over throughput, read only from replicas
    busy enough for ITL to see their prefills. The median of the variant's replicas moves the factor `learn_rate` of
    the way, bounded by `correction_max`. Only the variants seen busy enough have one (the others are planned with
    the mean of these: a model's profile errors are shared across GPU types).

    The factor only ever lowers a capacity (it is at least 1): utilization read with the profile's t0 cannot tell a
    faster iteration floor from less work per request, and taking a fast floor for light work plans replicas past
    their objective (replicas with a 30% lower t0 than the profile's: 83% within the SLO on the conversation hour
    where the uncorrected profile serves 99.6%). What measured TPOT proves raises a capacity instead (`_feedback`).
    A line through loads would separate the two; fitted on the bursty hour's 1-minute readings it was too noisy
    (99.05% fell to 96.1% with exact profiles)."""
    learned = {v.name: memory.work[v.name] for v in variants if v.name in memory.work}
    for v in variants:
        expected = v.profile.work_s(shape.prompt_tokens, shape.output_tokens, shape.cached_share)
        ratios = sorted(
            u / s.throughput / expected
            for s in obs.samples
            if s.variant == v.name and s.itl_s is not None and s.throughput > 0
            for u in [_utilization_at(v.profile.t0_s, s.itl_s)]
            if u >= tuning.min_utilization_to_learn
            and s.throughput * shape.output_tokens * s.itl_s >= tuning.min_decode_batch_to_learn
        )
        if ratios:
            old = learned.get(v.name, 1.0)
            new = old + tuning.learn_rate * (ratios[len(ratios) // 2] - old)
            learned[v.name] = min(tuning.correction_max, max(1.0, new))
    return learned


def _prefill_corrections(
    variants: Sequence[VariantSpec],
    obs: Observation,
    memory: Memory,
    shape: Shape,
    prompts: ttft.Prompts,
    tuning: Tuning,
) -> dict[str, float]:
    """Per variant, its replicas' measured mean prefill time (vLLM's `request_prefill_time_seconds`: first chunk
    scheduled to first token) over the one the TTFT model expects for the model's prompts at the replicas' measured
    load (their mean throughput and ITL over the same minute, by requests: Dynamo's TTFT correction), once they
    finished enough in that minute to say anything, moved `learn_rate` of the way and bounded both ways by
    `correction_max`. It scales the variant's prefill times wherever TTFT is planned; ITL cannot see a
    prefill cost on replicas that mostly prefill. Only replicas within their objective are read (no request waiting,
    mean ITL within the TPOT objective): one past its capacity runs batches the model of a replica at load does not
    describe. Read over the 5-minute window instead, a minute that looks calm carried a burst's prefill times
    (1.5-2x the modelled) long after it passed."""
    learned = {v.name: memory.prefill[v.name] for v in variants if v.name in memory.prefill}
    request = shape.request()
    for v in variants:
        mine = [
            s
            for s in obs.samples
            if s.variant == v.name and s.prefill_s is not None and s.throughput > 0
            if not s.queue and s.itl_s is not None and s.itl_s <= tuning.tpot_slo_s
        ]
        # Requests/s weigh the replicas: the minute's mean prefill time, load and ITL are read over the same minute.
        served = sum(s.throughput for s in mine)
        if served * SAMPLE_WINDOW_S < tuning.feedback_min_requests:
            continue
        measured = sum(s.throughput * (s.prefill_s or 0.0) for s in mine) / served
        # The router spreads the load evenly, so the replicas' mean load and ITL stand for each one's.
        itl = sum(s.throughput * (s.itl_s or 0.0) for s in mine) / served
        expected = ttft.mean_prefill_s(v.profile, prompts, request, served / len(mine), itl)
        if not 0 < expected < math.inf:
            continue
        old = learned.get(v.name, 1.0)
        new = old + tuning.learn_rate * (measured / expected - old)
        learned[v.name] = min(tuning.correction_max, max(1 / tuning.correction_max, new))
    return learned


def _mean_prompt(shape: Shape) -> ttft.Prompts:
    """Without the model's prompt histogram: its mean prompt alone."""
    return ttft.Prompts((shape.prompt_tokens,), (1.0,))


def _prefill_note(prefill: Mapping[str, float]) -> str:
    moved = [f"{n} x{f:.2f}" for n, f in sorted(prefill.items()) if abs(f - 1) >= 0.01]
    return f"; measured prefill time over the modelled: {', '.join(moved)}" if moved else ""


def _corrected(p: TokenProfile, work: float) -> TokenProfile:
    return replace(p, k_tok_s=p.k_tok_s * work, k_kv_s=p.k_kv_s * work)


def _work_note(work: Mapping[str, float]) -> str:
    moved = [f"{n} x{f:.2f}" for n, f in sorted(work.items()) if abs(f - 1) >= 0.01]
    return f"; measured work per request over the profile's: {', '.join(moved)}" if moved else ""


def replica_capacity(p: TokenProfile, shape: Shape, tuning: Tuning, chunks: tpot.Chunks | None = None) -> float:
    """Requests/s one replica serves with the p99 of a request's TPOT within the objective, for this shape: its work
    per request at the planned utilization, within its KV cache and its running-request cap; with `chunks`, also at
    most the allowed share of requests (1 - target) past the objective from other prompts' chunks in their decodes
    (`tpot.py`), searched only below the TPOT plan's utilization."""
    work = p.work_s(shape.prompt_tokens, shape.output_tokens, shape.cached_share)
    decode_s = shape.output_tokens * tuning.tpot_slo_s * tuning.itl_margin
    u = _planned_utilization(p.t0_s, 1 / work, decode_s, tuning)
    if chunks is not None:
        u = tpot.utilization_within(p, chunks, work, tuning.tpot_slo_s, 1 - tuning.slo_target, u)
    return p.rate_at_itl(p.t0_s / (1 - u), shape.prompt_tokens, shape.output_tokens, shape.cached_share)


def _full_window(
    window: Mapping[float, float] | None, last: Mapping[float, float], tuning: Tuning
) -> Mapping[float, float]:
    """A histogram of the model's requests over the feedback window once it holds enough to read a 1% tail, else
    the last such window's (a window thinned by pods whose series went with them says nothing new)."""
    if window and window.get(math.inf, 0.0) >= tuning.feedback_min_requests:
        return window
    return last


def _chunks(prompts: ttft.Prompts | None, outputs: Mapping[float, float], shape: Shape) -> tpot.Chunks | None:
    """What a replica's decodes meet, once both the prompts and the outputs have been read from enough requests."""
    lengths = ttft.prompts_of(outputs, OUTPUT_POINTS_PER_BUCKET) if outputs else None
    if prompts is None or lengths is None:
        return None
    return tpot.Chunks.of(prompts, lengths, shape.cached_share)


@dataclass(frozen=True)
class _TtftPlan:
    """What TTFT is planned on: per variant its profile as configured, its measured prefill correction and its share
    of the prompts at no load; and the model's prompts (None until the window holds enough to read a 1% tail)."""

    profiles: Mapping[str, TokenProfile]
    prefill: Mapping[str, float]
    prompts: ttft.Prompts | None
    idle: Mapping[str, float]
    held: set[str]  # too slow for the prompts: held at their minimum


def held_debt(
    idle: Mapping[str, float], held: set[str], served: Mapping[str, float], tuning: Tuning
) -> tuple[float, float]:
    """The share within TTFT the variants that grow must reach above their own goal, so that the pool still meets
    the model's: the router keeps sending a variant held at its minimum its share of the requests (`served`, the
    requests/s its replicas completed), and those it cannot prefill in time are misses the others make up for.
    The pool's share is f * s_held + (1 - f) * s_rest >= goal, so the rest reach f * (goal - s_held) / (1 - f)
    more. At most half the miss budget: the rest keep the other half for their own load, so a pool that is mostly
    the held minimum (a model starting) is not planned at no load. Returns the debt and f."""
    total = sum(served.values())
    routed = sum(r for n, r in served.items() if n in held)
    if not held or not idle or total <= 0 or routed <= 0:
        return 0.0, 0.0
    goal = _ttft_goal(idle, tuning)
    short = sum(r * max(0.0, goal - idle[n]) for n, r in served.items() if n in held)
    debt = short / total / (1 - routed / total) if routed < total else math.inf
    return min(debt, (1 - tuning.slo_target) / 2), routed / total


def ttft_capacities(
    plan: _TtftPlan,
    shape: Shape,
    tuning: Tuning,
    *,
    within: Mapping[str, float],
    replicas: int,
    debt: float,
) -> dict[str, float]:
    """Per variant, the highest rate per replica up to `within` (its capacity for the TPOT objective) at which the
    TTFT of its prompts meets the objective: the share within it at load stays within `1 - slo_target` of the share
    an idle replica reaches (the p99 of the prompts it can serve at all), with the queue wait of a pool of `replicas`
    behind the model's router, which sends each request to the least loaded (`ttft.py`), and the variant's measured
    prefill correction; the variants not held at their minimum reach `debt` more (`held_debt`). Only the TPOT
    capacity until the window holds enough prompts to read a 1% tail."""
    if plan.prompts is None:
        return dict(within)
    request = shape.request()
    return {
        name: ttft.capacity(
            plan.profiles[name],
            plan.prompts,
            request,
            tuning.ttft_slo_s,
            plan.idle[name] - (1 - tuning.slo_target) + (0.0 if name in plan.held else debt),
            within_rps=rate,
            replicas=max(1, replicas),
            prefill_factor=plan.prefill.get(name, 1.0),
        )
        for name, rate in within.items()
    }


def _supplied(v: VariantSpec, slow: set[str], limits: Mapping[str, Limit]) -> VariantSpec:
    """The variant as this pass may plan it: held at its minimum when it cannot prefill the observed prompts in
    time, at most what it got plus one when the cluster cannot supply it, else as it is."""
    if v.name in slow:
        return replace(v, max_replicas=v.min_replicas)
    if v.name in limits:
        return replace(v, max_replicas=max(v.min_replicas, limits[v.name].granted + 1))
    return v


def _ttft_note(shares: Mapping[str, float], slow: set[str], tuning: Tuning) -> str:
    said = ", ".join(f"{n} {shares[n] * 100:.1f}%" for n in sorted(slow))
    note = f"; TTFT: share of the observed prompts an idle replica prefills within {tuning.ttft_slo_s:g} s: {said}"
    return note + f" (best {max(shares.values()) * 100:.1f}%): held at their minimum"


def _within_limits(
    decision: Decision,
    desired: Mapping[str, int],
    supplied: Sequence[VariantSpec],
    limits: Mapping[str, Limit],
    now: float,
) -> Decision:
    """The decision with no limited variant asked for more than it got plus one (its stuck pods removed at once:
    they cost nothing, so no scale-down window holds them), and the reason naming each limit."""
    if not limits:
        return decision
    targets = {
        n: min(t, v.max_replicas) if n in limits else t
        for v in supplied
        for n, t in [(v.name, decision.targets[v.name])]
    }
    said = "; ".join(
        f"{n} capacity-limited ({limit.message}): at most {limit.granted + 1} for {limit.until - now:.0f}s"
        for n, limit in limits.items()
    )
    limited = {n: limit.message for n, limit in limits.items()}
    return replace(
        _decision(desired, targets, f"{decision.reason}; {said}"), capacity_rps=decision.capacity_rps, limited=limited
    )


def _unusable(
    variants: Sequence[VariantSpec], status: Mapping[str, VariantStatus], obs: Observation, tuning: Tuning
) -> str | None:
    """Why the metrics cannot be acted on, or None. Any reason holds every replica where it is."""
    serving = sum(status[v.name].ready for v in variants if v.name in status)
    if obs.sample_age_s is None:
        return "no metrics for the model's replicas" if serving else None
    if obs.sample_age_s > tuning.stale_after_s:
        return f"metrics are stale: newest sample {obs.sample_age_s:.0f}s old (limit {tuning.stale_after_s:.0f}s)"
    names = {v.name for v in variants}
    for s in obs.samples:
        values = (s.kv, s.queue, s.throughput, s.itl_s if s.itl_s is not None else 0.0)
        if s.variant not in names or any(math.isnan(x) or x < 0 for x in values) or s.kv > 1.0 + 1e-6:
            return f"contradictory metrics from pod {s.pod} (variant {s.variant})"
    return None


def _decision(desired: Mapping[str, int], targets: dict[str, int], reason: str) -> Decision:
    ups = any(targets[n] > desired[n] for n in targets)
    downs = any(targets[n] < desired[n] for n in targets)
    action: Action = "rebalance" if ups and downs else "scale-up" if ups else "scale-down" if downs else "none"
    return Decision(targets, action, reason)


def _seed(
    variants: Sequence[VariantSpec], t: Thresholds, status: Mapping[str, VariantStatus], obs: Observation
) -> Decision:
    """WVA v1: +-1 replica per cycle; nothing while any variant is in transition."""
    current = {v.name: status[v.name].current if v.name in status else 0 for v in variants}
    reporting = {v.name: sum(1 for s in obs.samples if s.variant == v.name) for v in variants}
    for v in variants:
        st = status.get(v.name)
        if st is None or st.desired != st.current or reporting[v.name] != st.current:
            desired = {n: status[n].desired if n in status else 0 for n in current}
            return Decision(desired, "hold", f"variant {v.name} is in transition")
    targets = dict(current)
    if sum(current.values()) == 0:
        cheapest = min(variants, key=lambda v: (v.cost, v.name))
        targets[cheapest.name] = 1
        return _decision(current, targets, "no replica: one on the cheapest variant")
    sat = analyze([Load(s.kv, s.queue) for s in obs.samples], t)
    if sat.scale_up:
        grow = [v for v in variants if current[v.name] < v.max_replicas and status[v.name].ready == current[v.name]]
        if grow:
            pick = min(grow, key=lambda v: (v.cost, v.name))
            targets[pick.name] += 1
            return _decision(current, targets, f"saturating ({sat.describe()}): +1 {pick.name}")
        return Decision(current, "none", f"saturating ({sat.describe()}) but every variant is at its maximum")
    if sat.scale_down_safe:
        shrink = [v for v in variants if current[v.name] > max(1, v.min_replicas)]
        if shrink:
            pick = max(shrink, key=lambda v: (v.cost, v.name))
            targets[pick.name] -= 1
            return _decision(current, targets, f"spare capacity ({sat.describe()}): -1 {pick.name}")
    return Decision(current, "none", sat.describe())


def _planned(
    variants: Sequence[VariantSpec],
    t: Thresholds,
    obs: Observation,
    memory: Memory,
    now: float,
    tuning: Tuning,
    *,
    desired: Mapping[str, int],
    ready: Mapping[str, int],
    shape: Shape,
    cold: Mapping[str, float],
    ttft_plan: "_TtftPlan",
    chunks: tpot.Chunks | None,
) -> tuple[Decision, Memory]:
    """The plan for the demand, checked by the guardrail, stepped to at once up and after a window down.
    `desired`: the replicas placed (stuck pods left out), `ready`: per variant those of them serving."""
    pending = sum(desired[n] - ready[n] for n in desired)  # placed, not ready yet
    planned = {v.name: replica_capacity(v.profile, shape, tuning) for v in variants}
    modelled = {v.name: replica_capacity(v.profile, shape, tuning, chunks) for v in variants} if chunks else planned
    corrections = _feedback(variants, obs, memory, modelled, now, tuning)
    within_tpot = {n: modelled[n] * corrections[n].factor for n in modelled}
    demand = _demand(variants, obs, memory, now, tuning, desired=desired, capacity=within_tpot, cold=cold)
    # The queue wait is that of the pool the plan will have: at least what it has, and at least what the demand
    # needs at the largest capacity per replica (a burst plans many replicas from few).
    pool = max(sum(desired.values()), math.ceil(demand.rps / max(within_tpot.values())))
    served = {v.name: sum(s.throughput for s in obs.samples if s.variant == v.name) for v in variants}
    debt, routed = held_debt(ttft_plan.idle, ttft_plan.held, served, tuning)  # none until the prompts are read
    capacity = ttft_capacities(ttft_plan, shape, tuning, within=within_tpot, replicas=pool, debt=debt)
    options = [Option(v.name, v.cost, capacity[v.name], v.min_replicas, v.max_replicas) for v in variants]
    plan = _incremental_plan(variants, desired, capacity, demand.rps, replace_worst=demand.slope >= 0 and not pending)
    if sum(plan.values()) == 0 and (obs.requests_in_retention != 0 or obs.wakes()):  # demand: never zero replicas
        best = min(options, key=lambda o: (o.cost_per_capacity, o.name))
        plan[best.name] = 1
    reason = f"{demand.describe()}, plan capacity {sum(plan[n] * capacity[n] for n in plan):.2f} req/s"
    plan, reason = _guardrail(
        plan, reason, t, obs, tuning, desired=desired, capacity=capacity, options=options, pending=pending
    )
    # A replica removed takes a cold start to get back: the window is never shorter than that.
    window = max(tuning.scale_down_window_s, demand.horizon)
    targets, plans = _stabilized(
        plan, memory.plans, now, desired=desired, ready=ready, options=options, window_s=window
    )
    if targets != plan:
        reason += f"; scale-down stabilizing ({window:.0f}s window)"
    memory = replace(memory, plans=plans, demands=demand.points, corrections=corrections)
    raised = [f"{n} x{c.factor:.2f}" for n, c in corrections.items() if c.factor != 1.0]
    if raised:
        reason += f"; capacity raised by measured TPOT: {', '.join(raised)}"
    chunked = [f"{n} {modelled[n]:.2f} of {planned[n]:.2f}" for n in planned if modelled[n] < planned[n]]
    if chunked:
        reason += f"; req/s per replica bound by other prompts' chunks in short outputs' decodes: {', '.join(chunked)}"
    bound = [f"{n} {capacity[n]:.2f} of {within_tpot[n]:.2f}" for n in capacity if capacity[n] < within_tpot[n]]
    if bound:
        reason += f"; req/s per replica bound by TTFT at load (a pool of {pool}): {', '.join(bound)}"
    if debt:
        taking = ", ".join(sorted(n for n in ttft_plan.held if served[n]))
        reason += (
            f"; TTFT: the replicas of {taking} (held at their minimum) take {routed:.1%} of the requests,"
            f" so the others are planned {debt * 100:.2f} points closer to their idle share"
        )
    return replace(_decision(desired, targets, reason), capacity_rps=capacity), memory


@dataclass(frozen=True)
class _Demand:
    """The requests/s a plan covers: those served, the backlog to drain, and the rise over one cold start, with
    the model's headroom."""

    rps: float
    rising: float  # of the measured demand over the horizon
    horizon: float  # the cold start of the variant a rise grows first
    slope: float  # the trend, req/s per second
    points: tuple[tuple[float, float], ...]  # (time, requests/s served) over the trend window, for the next pass

    def describe(self) -> str:
        return f"demand {self.rps:.2f} req/s (rising {self.rising:.2f} over a {self.horizon:.0f}s cold start)"


def _demand(
    variants: Sequence[VariantSpec],
    obs: Observation,
    memory: Memory,
    now: float,
    tuning: Tuning,
    *,
    desired: Mapping[str, int],
    capacity: Mapping[str, float],
    cold: Mapping[str, float],
) -> _Demand:
    """The rise is planned one cold start ahead: that of the variant a rise grows first (the best value with room),
    on a trend measured over at least as long as it is extrapolated."""
    served = sum(s.throughput for s in obs.samples)
    waiting = sum(s.queue for s in obs.samples) + (obs.waiting_upstream or 0.0)  # at the replicas and the picker
    backlog = waiting / tuning.backlog_drain_s
    measured = served + backlog
    growable = [v for v in variants if desired[v.name] < v.max_replicas] or list(variants)
    horizon = cold[min(growable, key=lambda v: (v.cost / capacity[v.name], v.name)).name]
    trend_window = max(tuning.trend_window_s, horizon)
    points = (*(d for d in memory.demands if now - d[0] < trend_window), (now, served))
    slope = _slope(points, trend_window)
    rising = max(0.0, slope) * horizon
    return _Demand((measured + rising) * (1 + tuning.headroom), rising, horizon, slope, points)


def _guardrail(
    plan: dict[str, int],
    reason: str,
    t: Thresholds,
    obs: Observation,
    tuning: Tuning,
    *,
    desired: Mapping[str, int],
    capacity: Mapping[str, float],
    options: Sequence[Option],
    pending: int,
) -> tuple[dict[str, int], str]:
    """The seed's saturation signal, and the latency objective itself, over the plan: one more replica of the best
    value when they say the replicas are short and the plan adds nothing, no scale-down when they say it is unsafe.
    Pending replicas are the answer to it already, so they stop it from adding more (no cascade while replicas
    start)."""
    supply = sum(desired[n] * capacity[n] for n in desired)
    planned = sum(plan[n] * capacity[n] for n in plan)
    sat = analyze([Load(s.kv, s.queue) for s in obs.samples], t)
    slow = [s.pod for s in obs.samples if s.itl_s is not None and s.itl_s > tuning.tpot_slo_s]
    # What it keeps is within what this pass allows each variant: one held at its minimum (too slow for the
    # prompts) or limited by the cluster is not kept above it.
    kept = {o.name: min(desired[o.name], o.high) for o in options}
    if obs.samples and (sat.scale_up or slow) and planned <= supply and not pending:
        room = [o for o in options if kept[o.name] < o.high]
        if room:
            best = min(room, key=lambda o: (o.cost_per_capacity, o.name))
            why = f"ITL over objective on {', '.join(slow)}" if slow else f"saturating ({sat.describe()})"
            return {**kept, best.name: kept[best.name] + 1}, f"guardrail: {why}: +1 {best.name}"
    elif not sat.scale_down_safe and planned < supply and sat.non_saturated < sat.replicas:
        return kept, f"guardrail: scale-down unsafe ({sat.describe()})"
    return plan, reason


def _stabilized(
    plan: Mapping[str, int],
    history: tuple[tuple[float, Mapping[str, int]], ...],
    now: float,
    *,
    desired: Mapping[str, int],
    ready: Mapping[str, int],
    options: Sequence[Option],
    window_s: float,
) -> tuple[dict[str, int], tuple[tuple[float, Mapping[str, int]], ...]]:
    """Scale up at once; scale down only as far as the last window's plans allow. Returns the targets and the
    window's plans. A fresh memory (a restarted controller) knows no window yet: the replicas it finds count as the
    plan of its first cycle.

    What the window holds is capacity, not each variant's count: where the plans of the window are different mixes
    (three L40S replicas on one pass, an H100 and one L40S on the next), the highest count of each variant would
    keep both mixes. Replicas the plan does not want go, the worst value first, while the ready replicas left still
    serve the most capacity any plan of the window asked for (replicas still starting serve nothing yet, so a
    variant being replaced stays until its replacement is ready).

    Replicas above what this pass allows a variant (held at its minimum as too slow for the prompts) are no
    capacity the window keeps: no returning demand would plan them again. They go, before any other, as soon as
    the ready replicas left serve this pass's plan; a window of a pool found at the start does not keep them."""
    known = history or ((now, dict(desired)),)
    plans = (*(p for p in known if now - p[0] < window_s), (now, plan))
    by_name = {o.name: o for o in options}
    allowed = {n: max(plan[n], by_name[n].high) for n in plan}  # the plan itself is within what the pass allows
    targets = {n: max(p[1][n] for p in plans) if plan[n] < desired[n] else plan[n] for n in plan}
    held = max(sum(min(p[1][n], allowed[n]) * by_name[n].capacity for n in plan) for p in plans)
    planned = sum(plan[n] * by_name[n].capacity for n in plan)

    worst_first = sorted(options, key=lambda o: (-o.cost_per_capacity, o.name))

    def serving(counts: Mapping[str, int]) -> float:
        return sum(min(counts[n], ready.get(n, 0)) * by_name[n].capacity for n in counts)

    def shed(down_to: Mapping[str, int], serve: float) -> None:
        """Remove replicas above `down_to`, the worst value first, while the ready ones left serve `serve`."""
        for o in worst_first:
            while targets[o.name] > down_to[o.name] and serving({**targets, o.name: targets[o.name] - 1}) >= serve:
                targets[o.name] -= 1

    shed(allowed, planned)  # the held replicas first: no capacity the window keeps
    shed(plan, held)
    return targets, plans


def ttft_shares(
    variants: Sequence[VariantSpec],
    prompts: ttft.Prompts | None,
    shape: Shape,
    tuning: Tuning,
    prefill: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Per variant, the share of the observed prompts an idle replica prefills within the TTFT objective (`ttft.py`
    at no load: its profile, scaled by its measured prefill correction, and the prompts not found in the prefix
    cache). Empty without enough prompts to say anything about a 1% tail: until then nothing is held."""
    if prompts is None:
        return {}
    request = shape.request()
    factor = prefill or {}
    return {
        v.name: ttft.share_within(
            v.profile, prompts, request, 0.0, tuning.ttft_slo_s, prefill_factor=factor.get(v.name, 1.0)
        )
        for v in variants
    }


def _ttft_goal(shares: Mapping[str, float], tuning: Tuning) -> float:
    """The share of prompts within TTFT the model is held to: the target, or 1 point below the best variant's idle
    share where none reaches it (prompts no GPU prefills in time)."""
    return min(tuning.slo_target, max(shares.values()) - 0.01) if shares else tuning.slo_target


def _ttft_limited(shares: Mapping[str, float], prompts: float, tuning: Tuning) -> set[str]:
    """The variants below the share every variant is held to: the target, or 1 point below the best variant's
    share where none reaches it (prompts no GPU prefills in time), the same rule the benchmark's oracle follows.
    Below it with confidence: by more than `tpot_quantile_z` standard errors of a share read from this many
    prompts, so a window's few long prompts do not swap the mix back and forth."""
    if not shares:
        return set()
    goal = _ttft_goal(shares, tuning)
    z = tuning.tpot_quantile_z
    return {n for n, p in shares.items() if p < goal - z * math.sqrt(max(p * (1 - p), 1e-9) / prompts)}


def _limits(
    variants: Sequence[VariantSpec], status: Mapping[str, VariantStatus], memory: Memory, now: float, tuning: Tuning
) -> dict[str, Limit]:
    """Variants the cluster cannot supply, from their stuck pods. A variant with stuck pods is asked for at most
    what it got placed plus one until its backoff passes; stuck again after that, the backoff doubles (to a cap);
    once it is past and nothing is stuck, the limit goes."""
    out: dict[str, Limit] = {}
    for v in variants:
        st, old = status.get(v.name), memory.limits.get(v.name)
        stuck = st.stuck if st else 0
        granted = max(0, st.current - stuck) if st else 0
        message = (st.scheduler_message if st else None) or "Unschedulable"
        if stuck and (old is None or now >= old.until):
            backoff = tuning.limited_backoff_s if old is None else min(tuning.limited_backoff_max_s, 2 * old.backoff_s)
            out[v.name] = Limit(granted, now + backoff, backoff, message)
        elif old is not None and (stuck or now < old.until):
            out[v.name] = replace(old, granted=granted, message=message if stuck else old.message)
    return out


def _slope(points: Sequence[tuple[float, float]], window_s: float) -> float:
    """The demand's trend: the median of the slopes between every two points (Theil-Sen), so one burst or the
    ramp of replicas that just started cannot make a trend; 0 until the points span half the window, and 0 unless
    at least three quarters of the pairwise slopes agree on its sign."""
    if len(points) < 3 or points[-1][0] - points[0][0] < window_s / 2:
        return 0.0
    slopes = sorted((b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(points) for b in points[i + 1 :] if b[0] > a[0])
    median = slopes[len(slopes) // 2]
    agree = sum(1 for x in slopes if x * median > 0)
    return median if agree >= 0.75 * len(slopes) else 0.0


def _incremental_plan(
    variants: Sequence[VariantSpec],
    desired: Mapping[str, int],
    capacity: Mapping[str, float],
    demand: float,
    replace_worst: bool,
) -> dict[str, int]:
    """The change of the current replicas that covers the demand: add replicas of the best value per unit of
    capacity when short; when over, remove replicas (the worst value first) and, with `replace_worst`, start the
    best-value replicas that would replace one more worst-value replica for less.

    Re-planning the whole mix from scratch swaps variants back and forth as the demand moves across the integer
    break-points of the mix (start three of one, drain two of another, then the reverse), paying a cold start and a
    drain each time. Adding only the best value and replacing only the worst moves the mix one way, towards the best
    value, so it cannot oscillate; adding whatever covers this cycle's deficit most cheaply would fill a ramp with
    poor-value replicas, and removing only whole surplus replicas keeps them after the ramp (a diurnal trough
    removes the cheap replicas first, and the next rise adds them back next to the expensive ones). The replaced
    replica stays until the scale-down window has passed, by when its replacements are ready.
    """
    kept = {v.name: min(v.max_replicas, max(v.min_replicas, desired.get(v.name, 0))) for v in variants}

    def growth(start: Mapping[str, int]) -> dict[str, int]:
        return best_value_growth(
            [Option(v.name, v.cost, capacity[v.name], start[v.name], v.max_replicas) for v in variants], demand
        )

    def cost(counts: Mapping[str, int]) -> float:
        return sum(counts[v.name] * v.cost for v in variants)

    if sum(kept[v.name] * capacity[v.name] for v in variants) < demand:
        return growth(kept)
    shrink = [Option(v.name, v.cost, capacity[v.name], v.min_replicas, kept[v.name]) for v in variants]
    plan = dict(cheapest_mix(shrink, demand).counts)
    removable = [v for v in variants if plan[v.name] > v.min_replicas]
    if not replace_worst or not removable:
        return plan
    worst = max(removable, key=lambda v: (v.cost / capacity[v.name], v.name))
    replaced = growth({**plan, worst.name: plan[worst.name] - 1})
    if replaced[worst.name] < plan[worst.name] and cost(replaced) < cost(plan):
        return {n: max(plan[n], replaced[n]) for n in plan}
    return plan


def _planned_utilization(decode_step_s: float, full_rps: float, decode_s: float, tuning: Tuning) -> float:
    """The utilization to plan a replica at so that the z-quantile of a request's TPOT meets the objective.

    A request's TPOT is its replica's ITL averaged over the request's decode time W (`decode_s`: its output tokens
    at the planned ITL). The requests it shares the replica with in that window arrive as a Poisson stream,
    n = rho * full * W of them, so at the quantile the utilization is rho * (1 + z / sqrt(n)); ITL = step /
    (1 - utilization) must stay within the objective. Solve rho + z * sqrt(rho / (full * W)) = u_slo, a quadratic
    in sqrt(rho). A replica that serves more requests, or longer ones, averages over more of them and needs less
    headroom (an H100 replica less than an L40S one). The mean ITL also stays within `itl_margin` of the objective.
    """
    u_slo = _utilization_at(decode_step_s, tuning.tpot_slo_s)
    a = tuning.tpot_quantile_z / math.sqrt(max(1e-9, full_rps * decode_s))
    root = (-a + math.sqrt(a * a + 4 * u_slo)) / 2
    mean_cap = _utilization_at(decode_step_s, tuning.tpot_slo_s * tuning.itl_margin)
    return max(0.05, min(mean_cap, root * root))


def _utilization_at(decode_step_s: float, itl_s: float) -> float:
    """A replica's decode utilization when its inter-token latency is itl_s: ITL = step / (1 - utilization)."""
    return min(0.99, max(0.05, 1 - decode_step_s / itl_s))


def _feedback(
    variants: Sequence[VariantSpec],
    obs: Observation,
    memory: Memory,
    modelled: Mapping[str, float],
    now: float,
    tuning: Tuning,
) -> dict[str, Correction]:
    """Raise a variant's planned capacity where its requests' measured TPOT shows room, at most once per window.

    The capacity model plans for a per-request spread it predicts from the load; vLLM's per-request TPOT histogram
    measures the spread. A variant that ran near its planned capacity with fewer than half the allowed misses
    (1 - target) gets more capacity planned; one that then misses more than allowed within its planned capacity
    steps back. The model stays the floor: measurement can prove room the model does not see, but misses below
    the model's capacity come from what more replicas cannot fix (a 40k-token prefill stalls even a light replica),
    and chasing them bought 75% more replicas for half a point on our mixed-size benchmark. A lightly loaded or
    overloaded variant proves nothing about its capacity and keeps its factor.
    """
    allowed = 1 - tuning.slo_target
    out: dict[str, Correction] = {}
    for v in variants:
        c = out[v.name] = memory.corrections.get(v.name, Correction())
        mine = [s for s in obs.samples if s.variant == v.name and s.tpot_requests is not None]
        finished = sum(s.tpot_requests or 0.0 for s in mine)
        if finished < tuning.feedback_min_requests or now - c.at < tuning.feedback_window_s:
            continue
        missed = 1 - sum(s.tpot_met or 0.0 for s in mine) / finished
        busy = sum(s.throughput for s in mine) / (len(mine) * modelled[v.name] * c.factor)
        if missed > allowed and busy <= 1.0 and c.factor > 1.0:
            out[v.name] = Correction(max(1.0, c.factor * (1 - tuning.feedback_step)), now)
        elif missed < allowed / 2 and busy >= tuning.feedback_busy and c.factor < tuning.feedback_max:
            out[v.name] = Correction(min(tuning.feedback_max, c.factor * (1 + tuning.feedback_step / 2)), now)
    return out
