"""The cluster loop: pods that are created (billed from then), become ready after the cold start, serve, and
drain when removed; Prometheus scrapes them; every policy interval the policy sees the same status and
observation the controller would, and its targets are applied."""

import sys
from dataclasses import dataclass, field
from typing import TextIO

from autoscaler.engine import Observation, Tuning, VariantStatus
from autoscaler.observe import DeploymentState, ServingPod, observation, variant_status
from autoscaler.sim import capacity, policies
from autoscaler.sim.fluid import FluidWorkload
from autoscaler.sim.oracle import OraclePolicy, StaticPeakPolicy
from autoscaler.sim.prometheus import RETENTION_S, SCRAPE_S, Prometheus
from autoscaler.sim.requests import RequestWorkload
from autoscaler.sim.serving import Replica, Workload
from autoscaler.sim.setup import Setup
from autoscaler.sim.traces import Envelope, Trace

POLICIES = ("default", "wva-v1", "hpa", "static-peak", "oracle")
TAIL_S = 300.0  # after the last arrival, replicas finish their work; what is left then is dropped
TIMELINE_S = 60.0
SCRAPE_OFFSET_S = 5.0  # scrapes land between decisions: the controller sees samples 10-25 s old


NAMESPACE = "llm"
NEVER = float("inf")


@dataclass
class Pod:
    """A model-server pod: placed on a node when its GPU type has room (else Unschedulable), billed from when its
    node is up, serving from `ready_at`."""

    name: str
    variant: str
    replica: Replica
    created_at: float = 0.0
    node_up_at: float = NEVER  # NEVER while the scheduler cannot place it
    ready_at: float = NEVER
    draining: bool = False

    @property
    def placed(self) -> bool:
        return self.node_up_at < NEVER


@dataclass
class Timeline:
    t: list[float] = field(default_factory=list)
    load_rps: list[float] = field(default_factory=list)
    replicas: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    policy: str
    requests: int
    slo_attainment: float
    ttft_p99_s: float
    tpot_p99_s: float
    cost_usd: float
    gpu_hours: dict[str, float]
    scale_events: int
    dropped: float
    refused: float  # over the model's context: answered with an error by any policy, so not in the attainment
    prefix_hit_ratio: float  # prompt tokens served from the prefix cache, over all prompt tokens looked up
    timeline: Timeline

    def summary(self) -> dict[str, object]:
        """The JSON object of the `python -m autoscaler.sim --json` contract."""
        return {
            "policy": self.policy,
            "requests": self.requests,
            "slo_attainment": round(self.slo_attainment, 5),
            "ttft_p99_s": round(self.ttft_p99_s, 3),
            "tpot_p99_s": round(self.tpot_p99_s, 4),
            "cost_usd": round(self.cost_usd, 2),
            "gpu_hours": {k: round(v, 2) for k, v in self.gpu_hours.items()},
            "scale_events": self.scale_events,
            "dropped": round(self.dropped),
            "refused": round(self.refused),
            "prefix_hit_ratio": round(self.prefix_hit_ratio, 4),
        }


def workload_for(trace: Trace, setup: Setup) -> Workload:
    if isinstance(trace, Envelope):
        return FluidWorkload(trace, setup.slo, setup.routing, setup.seed, setup.context_tokens)
    return RequestWorkload(
        trace, setup.slo, setup.routing, setup.context_tokens, flow_control=setup.picker_queue, seed=setup.seed
    )


def make_policy(name: str, setup: Setup, workload: Workload) -> policies.Policy:
    if name == "oracle":
        return OraclePolicy(setup, workload)
    if name == "static-peak":
        return StaticPeakPolicy(setup, workload)
    return policies.make(name, setup)


def simulate(name: str, setup: Setup, trace: Trace, progress: TextIO | None = None) -> Result:
    workload = workload_for(trace, setup)
    policy = make_policy(name, setup, workload)
    return Cluster(setup, workload).run(policy, progress)


class Cluster:
    def __init__(self, setup: Setup, workload: Workload) -> None:
        self.setup = setup
        self.workload = workload
        self.variants = {v.spec.name: v for v in setup.variants}
        self.slo_rates = {
            v.spec.name: capacity.slo_rate(v.profile, workload.lengths, setup.slo, setup.routing, setup.seed)
            for v in setup.variants
        }
        self.pods: list[Pod] = []
        self.serial = 0
        self.targets: dict[str, int] = {}
        self.prometheus = Prometheus()
        self.completed_gone = 0.0
        self.prefix_gone = (0.0, 0.0)  # prefix-cache queries and hits of removed replicas
        self.cost = 0.0
        self.gpu_hours = {v.accelerator: 0.0 for v in setup.variants}
        self.events = 0

    def run(self, policy: policies.Policy, progress: TextIO | None) -> Result:
        w, dt = self.workload, self.workload.step_s
        warm = getattr(policy, "warm_start", None) or OraclePolicy(self.setup, w).warm_start
        self._apply(warm, now=0.0, warm_start=True)
        self.events = 0
        timeline = Timeline(replicas={n: [] for n in self.variants})
        load = w.demand(TIMELINE_S)
        end = w.duration_s + TAIL_S
        next_scrape, next_decision, next_mark = SCRAPE_OFFSET_S, 0.0, 0.0
        t = 0.0
        while t < end:
            if t >= next_scrape:
                self._scrape(t)
                next_scrape += SCRAPE_S
            if t >= next_decision:
                self._apply(policy.decide(t, self._status(t), self._observe(t)), now=t)
                next_decision += policy.interval_s
            if t >= next_mark:
                self._mark(timeline, t, load)
                next_mark += TIMELINE_S
                if progress is not None:
                    _bar(progress, t / end)
            ready = [p for p in self.pods if not p.draining and p.ready_at <= t]
            w.step(t, [p.replica for p in ready], [p.replica for p in self.pods if p.draining])
            self._bill(t, dt)
            self._reap(t)
            t += dt
        if progress is not None:
            _bar(progress, 1.0)
            progress.write("\n")
        out = w.outcome()
        queries = self.prefix_gone[0] + sum(p.replica.prefix_queries for p in self.pods)
        hits = self.prefix_gone[1] + sum(p.replica.prefix_hits for p in self.pods)
        return Result(
            policy=policy.name,
            requests=out.requests,
            slo_attainment=out.ok / (out.requests - out.refused) if out.requests > out.refused else 1.0,
            ttft_p99_s=out.ttft_p99_s,
            tpot_p99_s=out.tpot_p99_s,
            cost_usd=self.cost,
            gpu_hours=self.gpu_hours,
            scale_events=self.events,
            dropped=out.dropped,
            refused=out.refused,
            prefix_hit_ratio=hits / queries if queries else 0.0,
            timeline=timeline,
        )

    def _live(self, variant: str) -> list[Pod]:
        return [p for p in self.pods if p.variant == variant and not p.draining]

    def _pod_list(self, t: float) -> list[ServingPod]:
        """The pod list as the API server shows it: live pods, ready or not, the unplaced ones Unschedulable, with
        their creation and Ready times."""
        return [
            ServingPod(
                NAMESPACE,
                p.name,
                p.variant,
                p.ready_at <= t,
                None if p.node_up_at <= t else self._message(p),
                0.0 if p.ready_at <= t else t - p.created_at,
                p.ready_at - p.created_at if p.ready_at <= t else None,
            )
            for p in self.pods
            if not p.draining
        ]

    def _message(self, pod: Pod) -> str:
        v = self.variants[pod.variant]
        supply = self.setup.supply.get(v.accelerator)
        nodes = supply.inventory if supply else 0
        if pod.placed:
            return f"0/{nodes} nodes are available: {v.gpus} Insufficient nvidia.com/gpu (a node is being added)"
        return f"0/{nodes} nodes are available: {nodes} Insufficient nvidia.com/gpu"

    def _status(self, t: float) -> dict[str, VariantStatus]:
        pods = self._pod_list(t)
        deployments = {
            (NAMESPACE, n): DeploymentState(self.targets.get(n, 0), len(live), sum(1 for p in live if p.ready_at <= t))
            for n in self.variants
            for live in [self._live(n)]
        }
        return variant_status({n: n for n in self.variants}, NAMESPACE, deployments, pods, Tuning().node_allowance_s)

    def _observe(self, t: float) -> Observation:
        snapshot = self.prometheus.snapshot(
            t, NAMESPACE, self.setup.model_id, self.setup.slo.tpot_s, self.setup.slo.ttft_s
        )
        observed, _ = observation(self.setup.spec, NAMESPACE, self._pod_list(t), snapshot, None, t, RETENTION_S, t)
        return observed

    def _scrape(self, t: float) -> None:
        ready = {p.name: p.replica for p in self.pods if not p.draining and p.ready_at <= t}
        total = self.completed_gone + sum(p.replica.completed for p in self.pods)
        upstream = self.workload.waiting_upstream() if self.setup.picker_queue else None
        self.prometheus.scrape(t, ready, total, upstream)

    def _apply(self, targets: dict[str, int], now: float, warm_start: bool = False) -> None:
        for name, want in targets.items():
            if want != self.targets.get(name):
                self.events += 1
            self.targets[name] = want
            live = self._live(name)
            v = self.variants[name]
            for _ in range(want - len(live)):
                self.serial += 1
                replica = self.workload.new_replica(v.profile, self.slo_rates[name])
                self.pods.append(Pod(f"{name}-{self.serial}", name, replica, created_at=now))
            # Remove unplaced and starting pods first (newest first), then the ready ones with the least work.
            for pod in sorted(live, key=lambda p: (-p.ready_at, p.replica.waiting()))[: max(0, len(live) - want)]:
                pod.draining = True
        self._place(now, warm_start)

    def _place(self, now: float, warm_start: bool = False) -> None:
        """Give waiting pods a node, oldest first, while their GPU type has room: within the warm pool at once,
        beyond it once a node is added. The warm start of a run finds its pods ready."""
        for pod in self.pods:
            if pod.placed or pod.draining:
                continue
            v = self.variants[pod.variant]
            supply = self.setup.supply.get(v.accelerator)
            held = sum(1 for p in self.pods if p.placed and self.variants[p.variant].accelerator == v.accelerator)
            if supply is not None and held >= supply.inventory:
                continue
            delay = supply.provision_seconds if supply is not None and held >= supply.warm else 0.0
            pod.node_up_at = now if warm_start else now + delay
            pod.ready_at = now if warm_start else pod.node_up_at + self.setup.cold_start_s
            if warm_start:  # it was created a cold start before the run
                pod.created_at = now - self.setup.cold_start_s

    def _bill(self, t: float, dt: float) -> None:
        for p in self.pods:
            if p.node_up_at > t:
                continue  # not placed, or its node not up yet: nothing is billed
            v = self.variants[p.variant]
            self.cost += v.spec.cost * dt / 3600
            self.gpu_hours[v.accelerator] += v.gpus * dt / 3600

    def _reap(self, t: float) -> None:
        done = [p for p in self.pods if p.draining and p.replica.idle()]
        self.completed_gone += sum(p.replica.completed for p in done)
        queries, hits = self.prefix_gone
        self.prefix_gone = (
            queries + sum(p.replica.prefix_queries for p in done),
            hits + sum(p.replica.prefix_hits for p in done),
        )
        self.pods = [p for p in self.pods if not (p.draining and p.replica.idle())]
        if done:
            self._place(t)

    def _mark(self, timeline: Timeline, t: float, load: list[float]) -> None:
        timeline.t.append(t)
        timeline.load_rps.append(load[min(len(load) - 1, int(t // TIMELINE_S))] if load else 0.0)
        for n in self.variants:
            timeline.replicas[n].append(len(self._live(n)))


def _bar(out: TextIO, fraction: float) -> None:
    filled = int(fraction * 40)
    out.write(f"\r[{'#' * filled}{'.' * (40 - filled)}] {fraction * 100:5.1f}%")
    out.flush()


def progress_stream(force: bool) -> TextIO | None:
    return sys.stderr if force or sys.stderr.isatty() else None
