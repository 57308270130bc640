"""The per-request serving model: continuous batching on each replica, one time step at a time.

Each step a replica admits waiting requests while its batch and KV-cache have room (a request reserves its
prompt and output), runs their prefills, and spends the rest of the step in decode iterations of
`t0 + k_tok * batch + k_kv * kv_tokens`. Times inside a step are interpolated, so TTFT and TPOT are per request.
"""

import itertools
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from autoscaler.sim.profiles import Profile
from autoscaler.sim.serving import Outcome, Replica, Routing, Slo
from autoscaler.sim.traces import Lengths, Requests

STEP_S = 1.0


@dataclass
class _Running:
    index: int
    first_token_s: float
    remaining: float  # output tokens still to decode
    context: float  # KV-cache tokens it holds now
    reserved: int  # KV-cache tokens it may grow to


class RequestReplica:
    def __init__(
        self, profile: Profile, speed: float, slo: Slo, trace: Requests, ttft: np.ndarray, tpot: np.ndarray
    ) -> None:
        self.profile = profile
        self.speed = speed  # tokens/s this replica serves within the SLO
        self.slo = slo
        self.trace = trace
        self.ttft, self.tpot = ttft, tpot
        self.queue: deque[int] = deque()
        self.running: list[_Running] = []
        self.reserved = 0
        self.kv = 0.0
        self.busy_s = 0.0  # prefill work carried over from the previous step
        self.outstanding_tokens = 0.0
        self.completed = 0.0
        self.itl_sum = 0.0
        self.tokens = 0.0
        self.tpot_met = 0.0

    def kv_usage(self) -> float:
        return min(1.0, max(0.0, self.kv / self.profile.kv_capacity))

    def waiting(self) -> float:
        return float(len(self.queue))

    def idle(self) -> bool:
        return not self.queue and not self.running

    def outstanding_s(self) -> float:
        """Work queued on this replica, in seconds at its speed within the SLO: what least-work routing compares, so
        a pool of different GPUs is loaded in proportion to what each serves within the SLO."""
        return self.busy_s + self.outstanding_tokens / self.speed

    def add(self, index: int) -> None:
        self.queue.append(index)
        self.outstanding_tokens += int(self.trace.lengths.input[index] + self.trace.lengths.output[index])

    def step(self, t: float, dt: float) -> None:
        p, arrival = self.profile, self.trace.arrival_s
        busy = min(dt, self.busy_s)  # seconds of this step spent on prefills
        self.busy_s -= busy
        clock = t + busy
        inputs, outputs = self.trace.lengths.input, self.trace.lengths.output
        while self.queue and self.busy_s == 0 and len(self.running) < p.max_num_seqs:
            i = self.queue[0]
            need = int(inputs[i] + outputs[i])
            if self.reserved + need > p.kv_capacity and self.running:
                break
            self.queue.popleft()
            prefill = p.prefill_s(float(inputs[i]))
            clock = max(clock, float(arrival[i])) + prefill
            self.ttft[i] = clock - arrival[i]
            self.outstanding_tokens -= int(inputs[i]) + 1  # the prefill also yields the first output token
            self.reserved += need
            self.kv += float(inputs[i])
            self.running.append(_Running(i, clock, float(outputs[i] - 1), float(inputs[i]), need))
            busy += prefill
            if clock > t + dt:
                self.busy_s = clock - (t + dt)
                busy -= self.busy_s
        self._decode(t, dt, dt - busy)

    def _decode(self, t: float, dt: float, budget: float) -> None:
        if budget <= 0:
            # A step of prefills only: every decoding request's next token waits it out.
            self.itl_sum += dt * sum(1 for r in self.running if r.first_token_s <= t)
            return
        if not self.running:
            return
        iteration = self.profile.iteration_s(len(self.running), self.kv)
        itl = iteration * dt / budget  # prefills in the step stall the decodes
        end = t + dt
        still: list[_Running] = []
        for r in self.running:
            gen = min(r.remaining, max(0.0, (end - max(r.first_token_s, t)) / itl))
            r.remaining -= gen
            r.context += gen
            self.kv += gen
            self.outstanding_tokens -= gen
            self.tokens += gen
            self.itl_sum += gen * itl
            if r.remaining <= 1e-9:
                finish = max(r.first_token_s, t) + gen * itl
                decoded = self.trace.lengths.output[r.index] - 1
                self.tpot[r.index] = (finish - r.first_token_s) / decoded if decoded > 0 else 0.0
                self.tpot_met += self.tpot[r.index] <= self.slo.tpot_s
                self.completed += 1
                self.reserved -= r.reserved
                self.kv -= r.context
            else:
                still.append(r)
        self.running = still


class RequestWorkload:
    """Replays every request of a trace; requests wait at the router while no replica serves."""

    step_s = STEP_S

    def __init__(self, trace: Requests, slo: Slo, routing: Routing) -> None:
        self.trace = trace
        self.slo = slo
        self.routing = routing
        self.duration_s = trace.duration_s
        self.mean_in, self.mean_out = float(trace.lengths.input.mean()), float(trace.lengths.output.mean())
        n = len(trace.arrival_s)
        self.ttft = np.full(n, np.nan)
        self.tpot = np.full(n, np.nan)
        self.next = 0
        self.held: deque[int] = deque()
        self.turn = itertools.count()

    def new_replica(self, profile: Profile, slo_rate: float) -> RequestReplica:
        speed = slo_rate * (self.mean_in + self.mean_out)
        return RequestReplica(profile, speed, self.slo, self.trace, self.ttft, self.tpot)

    def step(self, t: float, serving: list[Replica], draining: list[Replica]) -> None:
        live = [r for r in serving if isinstance(r, RequestReplica)]
        for r in draining:
            if isinstance(r, RequestReplica):
                self.held.extend(r.queue)
                r.outstanding_tokens -= sum(
                    int(self.trace.lengths.input[i] + self.trace.lengths.output[i]) for i in r.queue
                )
                r.queue.clear()
        end = int(np.searchsorted(self.trace.arrival_s, t + self.step_s, side="left"))
        self.held.extend(range(self.next, end))
        self.next = end
        if live:
            while self.held:
                self._pick(live).add(self.held.popleft())
        for r in [*serving, *draining]:
            if isinstance(r, RequestReplica):
                r.step(t, self.step_s)

    def _pick(self, live: list[RequestReplica]) -> RequestReplica:
        if self.routing == "round-robin":
            return live[next(self.turn) % len(live)]
        return min(live, key=lambda r: r.outstanding_s())

    def outcome(self) -> Outcome:
        done = ~np.isnan(self.tpot)
        ok = done & (self.ttft <= self.slo.ttft_s) & (self.tpot <= self.slo.tpot_s)
        ttft, tpot = self.ttft[done], self.tpot[done]
        return Outcome(
            requests=len(self.ttft),
            ok=float(ok.sum()),
            dropped=float((~done).sum()),
            ttft_p99_s=float(np.percentile(ttft, 99)) if len(ttft) else math.nan,
            tpot_p99_s=float(np.percentile(tpot, 99)) if len(tpot) else math.nan,
        )

    def demand(self, window_s: float) -> list[float]:
        bins = math.ceil(self.duration_s / window_s)
        counts = np.bincount((self.trace.arrival_s // window_s).astype(np.int64), minlength=bins)
        return [float(c) / window_s for c in counts]

    @property
    def lengths(self) -> Lengths:
        return self.trace.lengths
