"""From what the controller reads to what the engine decides on: one pure path, used by the controller and by the
simulator alike, so the benchmark exercises the controller's own rules (live and ready pods only, the model-name
guard, the watched retention window, pods the scheduler cannot place).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.api import VariantAutoscalingSpec
from autoscaler.engine import Observation, ReplicaSample, VariantStatus
from autoscaler.metrics import Snapshot


@dataclass(frozen=True)
class DeploymentState:
    desired: int
    current: int
    ready: int


@dataclass(frozen=True)
class ServingPod:
    namespace: str
    name: str
    variant: str
    ready: bool
    # The scheduler's word on a pod it cannot place (PodScheduled=False, reason Unschedulable), else None.
    unschedulable: str | None = None
    pending_s: float = 0.0  # how long a pod that is not ready has existed
    ready_after_s: float | None = None  # a ready pod: seconds from its creation to Ready


def variant_status(
    refs: Mapping[str, str],
    ns: str,
    deployments: Mapping[tuple[str, str], DeploymentState],
    pods: list[ServingPod],
    node_allowance_s: float,
) -> dict[str, VariantStatus]:
    """Replica counts per variant from its Deployment, with its pods the scheduler cannot place, those that
    stopped counting as supply (Unschedulable past the time a node takes to be added), how long its placed pods
    have been starting, and how long its ready pods took to start (the median: a restarted container's later Ready
    does not move it)."""
    unplaced: dict[str, list[str]] = {}
    stuck: dict[str, int] = {}
    starting: dict[str, list[float]] = {}
    started: dict[str, list[float]] = {}
    for p in pods:
        if p.namespace != ns:
            continue
        if p.ready:
            if p.ready_after_s is not None:
                started.setdefault(p.variant, []).append(p.ready_after_s)
        elif p.unschedulable:
            unplaced.setdefault(p.variant, []).append(p.unschedulable)
            if p.pending_s > node_allowance_s:
                stuck[p.variant] = stuck.get(p.variant, 0) + 1
        else:
            starting.setdefault(p.variant, []).append(p.pending_s)
    status = {}
    for name, ref in refs.items():
        d = deployments.get((ns, ref))
        if d is not None:
            messages = unplaced.get(name, [])
            took = sorted(started.get(name, []))
            status[name] = VariantStatus(
                name,
                d.desired,
                d.current,
                d.ready,
                len(messages),
                next(iter(messages), None),
                stuck.get(name, 0),
                tuple(starting.get(name, [])),
                took[len(took) // 2] if took else None,
            )
    return status


def observation(
    spec: VariantAutoscalingSpec,
    ns: str,
    pods: list[ServingPod],
    snapshot: Snapshot | None,
    prometheus_error: str | None,
    watched_for_s: float,
    retention_s: float,
    now: float,
) -> tuple[Observation, str | None]:
    """Samples of the model's live, ready pods; and why they are not usable, in words a person can act on.

    `watched_for_s`: how long this model has been watched. "No requests over the retention window" needs the window
    watched: a counter that appeared a minute ago proves nothing.
    """
    if snapshot is None:
        return Observation((), None, None), prometheus_error
    upstream = snapshot.waiting_upstream.get((ns, spec.model_id))
    prompts = snapshot.prompt_tokens.get((ns, spec.model_id))
    names = {v.name for v in spec.variants}
    live = [p for p in pods if p.namespace == ns and p.variant in names and p.ready]
    samples, seen = [], []
    for pod in live:
        m = snapshot.pods.get((ns, pod.name))
        if m is None or m.kv is None or m.queue is None:
            continue
        seen.append(m.last_seen or 0.0)
        finished, met = m.tpot_within(spec.slo.tpot_seconds) or (None, None)
        samples.append(
            ReplicaSample(
                pod.variant, pod.name, m.kv, m.queue, m.throughput or 0.0, m.itl_s, finished, met, m.prefill_s
            )
        )
    names_seen = snapshot.model_names_in(ns)
    retention = snapshot.requests_in_retention.get((ns, spec.model_id))
    problem = None
    if live and not samples:
        problem = (
            f"no series for the pods of model_name={spec.model_id} in namespace {ns}; "
            f"model names seen: {', '.join(names_seen) or 'none'}"
        )
    elif samples and spec.model_id not in names_seen:
        # Per-pod metrics still work, but the idle check reads by model name: never scale to zero on it.
        retention = None
    if watched_for_s < retention_s:
        retention = None
    age = now - max(seen) if seen else None
    key = (ns, spec.model_id)
    shape, ttft, outputs = snapshot.shapes.get(key), snapshot.ttft.get(key), snapshot.generation_tokens.get(key)
    return Observation(tuple(samples), age, retention, upstream, prompts, shape, ttft, outputs), problem
