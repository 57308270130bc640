"""One reconcile pass over every VariantAutoscaling: read -> decide -> act -> report.

Reads are a constant number of Kubernetes lists and Prometheus queries for all models together. Decisions are the
engine's. Acting is refused for a Deployment an HPA owns, skipped in dry-run, and held whenever the inputs cannot be
trusted; every hold says why in the object's status and, when it starts, in a Warning event. The log has one line
per change and per hold (again only when its cause changes or clears), in `autoscaler.telemetry`'s format.
"""

import functools
import logging
import re
import time
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from autoscaler.api import (
    THRESHOLDS_CONFIGMAP,
    Condition,
    ConditionStatus,
    ConditionType,
    LastDecision,
    ThresholdOverride,
    Thresholds,
    VariantAutoscalingSpec,
    VariantReplicas,
    parse_thresholds_configmap,
    thresholds_for,
)
from autoscaler.engine import Decision, Memory, Mode, Observation, Tuning, VariantSpec, VariantStatus, decide
from autoscaler.failures import kubernetes_problem, log_failure, prometheus_problem
from autoscaler.kube import Kube
from autoscaler.metrics import PrometheusAuth, Queries, Query, Snapshot, collect
from autoscaler.observe import DeploymentState, ServingPod, observation, variant_status
from autoscaler.priors import variant_spec
from autoscaler.telemetry import Telemetry

log = logging.getLogger("autoscaler")
ObjectKey = tuple[str, str]
LOCAL_PROMETHEUS = PrometheusAuth("http://localhost:9090")


@dataclass(frozen=True)
class Settings:
    namespace: str  # the autoscaler's own: thresholds ConfigMap and leader Lease
    mode: Mode = "default"
    dry_run: bool = False
    retention_s: int = 600
    stale_after_s: float = 60.0
    prometheus: PrometheusAuth = LOCAL_PROMETHEUS  # where `query` asks: named when it fails

    @functools.cached_property
    def queries(self) -> Queries:
        """The PromQL of a pass: counters over the engine's feedback window and the idle check's retention."""
        return Queries(feedback_window_s=Tuning().feedback_window_s, retention_s=self.retention_s)


@dataclass(frozen=True)
class World:
    """What one pass reads before deciding anything."""

    deployments: Mapping[tuple[str, str], DeploymentState]
    pods: Mapping[tuple[str, str], list[ServingPod]]  # by (namespace, variant): each model reads only its own
    hpa_targets: set[tuple[str, str]]
    snapshot: Snapshot | None
    prometheus_error: str | None = None

    def pods_of(self, ns: str, variants: Iterable[str]) -> list[ServingPod]:
        return [p for v in variants for p in self.pods.get((ns, v), [])]


@dataclass(frozen=True)
class Model:
    """One VariantAutoscaling as a pass read it: all its decision is made from."""

    key: ObjectKey
    spec: VariantAutoscalingSpec
    refs: Mapping[str, str]  # variant -> its Deployment
    unresolved: tuple[str, str] | None  # (reason, message) when a Deployment cannot be scaled
    tuning: Tuning
    pods: list[ServingPod]
    status: Mapping[str, VariantStatus]
    observed: Observation
    metrics_problem: str | None


def by_variant(pods: list[ServingPod]) -> dict[tuple[str, str], list[ServingPod]]:
    index: dict[tuple[str, str], list[ServingPod]] = {}
    for p in pods:
        index.setdefault((p.namespace, p.variant), []).append(p)
    return index


@dataclass
class Controller:
    kube: Kube
    query: Query
    settings: Settings
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Callable[[], float] = time.time
    memory: dict[ObjectKey, Memory] = field(default_factory=dict)
    thresholds: tuple[Thresholds, list[ThresholdOverride]] = (Thresholds(), [])
    _bad_config: str | None = None
    _conditions: dict[ObjectKey, dict[str, ConditionStatus]] = field(default_factory=dict)  # status last seen
    _watched: dict[tuple[str, str], float] = field(default_factory=dict)  # (namespace, model id) -> first seen
    _holding: dict[ObjectKey, str] = field(default_factory=dict)  # the cause last logged, numbers left out
    # Per object, its valid spec and variants as the engine plans them, for the generation they were read at: a spec
    # changes only with its generation, and validating it and building the profiles is most of a pass's CPU.
    _specs: dict[ObjectKey, tuple[tuple[str, int], VariantAutoscalingSpec, list[VariantSpec]]] = field(
        default_factory=dict
    )

    def reconcile(self) -> None:
        """One pass. A failed read of the cluster holds every object (saying why where its status can be written)
        and leaves the pass incomplete; the next pass retries."""
        started = time.perf_counter()
        objects = self.kube.variant_autoscalings()
        try:
            self._load_thresholds()
            world = self._read_world()
        except Exception as error:
            problem = kubernetes_problem(error, self.kube.timeout)
            if problem is None:
                raise
            self.telemetry.errors.labels("kubernetes").inc()
            for obj in objects:
                self._hold_unread(obj, problem)
            return
        for obj in objects:
            try:
                self._reconcile_one(obj, world)
            except Exception as error:  # one broken object must not stop the others
                self.telemetry.errors.labels("reconcile").inc()
                log_failure(
                    f"reconcile of {obj['metadata']['namespace']}/{obj['metadata']['name']}", error, self.kube.timeout
                )
        self.telemetry.reconcile_seconds.observe(time.perf_counter() - started)
        self.telemetry.last_reconcile.set(self.clock())

    # --- read --------------------------------------------------------------------------------------------------

    def _load_thresholds(self) -> None:
        """A malformed ConfigMap keeps the last good thresholds and says so, once, in a Warning event."""
        data = self.kube.config_map(self.settings.namespace, THRESHOLDS_CONFIGMAP)
        try:
            self.thresholds = parse_thresholds_configmap(data or {})
            self._bad_config = None
        except ValueError as error:
            if str(error) != self._bad_config:
                self._bad_config = str(error)
                configmap = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": THRESHOLDS_CONFIGMAP, "namespace": self.settings.namespace},
                }
                self.kube.event(
                    configmap,
                    "Warning",
                    "InvalidThresholds",
                    f"{error}; keeping the last good thresholds",
                    self.clock(),
                )
            log.warning("%s; keeping the last good thresholds", error)

    def _read_world(self) -> World:
        deployments = self.kube.serving_deployments()
        pods = by_variant(self.kube.serving_pods(self.clock()))
        hpas = self.kube.hpa_targets()
        try:
            return World(deployments, pods, hpas, collect(self.query, self.settings.queries, self.clock))
        except Exception as error:  # any Prometheus failure: every model holds
            self.telemetry.errors.labels("prometheus").inc()
            log.debug("Prometheus queries failed", exc_info=True)
            p = self.settings.prometheus
            return World(deployments, pods, hpas, None, prometheus_problem(p.url, p.timeout_s, error))

    # --- one object --------------------------------------------------------------------------------------------

    def _reconcile_one(self, obj: Mapping[str, Any], world: World) -> None:
        """Read the model out of the pass's world, decide, act unless something holds it, report what was found."""
        now = self.clock()
        read = self._valid_spec(obj, now)
        if read is None:
            return
        spec, variants = read
        model = self._read_model(obj, spec, world, now)
        decision, memory = self._decide(model, variants, now)
        metrics_problem = model.metrics_problem or (None if decision.metrics_available else decision.reason)
        held = hold_cause(model.unresolved, metrics_problem)
        self._log_hold(model.key, spec.model_id, held)
        failed: list[str] = []
        if held is None:
            self.memory[model.key] = memory
            failed = self._act(obj, model, decision, now)
        at = timestamp(now)
        conditions = [
            target_condition(model.unresolved, deployments=len(model.refs), at=at),
            metrics_condition(metrics_problem, reporting=len(model.observed.samples), at=at),
            capacity_condition(decision.limited, at=at),
            ready_condition(held=held, failed=failed, decision=decision, dry_run=self.settings.dry_run, at=at),
        ]
        rows = variant_rows(model.refs, model.status, decision.targets, measured(world.snapshot, model.pods))
        self._report(obj, conditions, now, rows, decision)
        self._export(model, decision, acted=held is None)

    def _valid_spec(
        self, obj: Mapping[str, Any], now: float
    ) -> tuple[VariantAutoscalingSpec, list[VariantSpec]] | None:
        """The object's spec and its variants for the engine; None once an invalid one is reported (it holds until
        it is fixed). Read again only when the object's uid or generation changes (an object without a generation,
        as a stand-in may serve it, every pass)."""
        meta = obj["metadata"]
        key, version = (meta["namespace"], meta["name"]), (meta.get("uid", ""), meta.get("generation"))
        cached = self._specs.get(key)
        if cached is not None and version[1] is not None and cached[0] == version:
            return cached[1], cached[2]
        try:
            spec = VariantAutoscalingSpec.model_validate(obj.get("spec", {}))
        except ValidationError as error:
            self._specs.pop(key, None)
            invalid = str(error).replace("\n", " ")
            self._report(obj, [invalid_spec_condition(invalid, at=timestamp(now))], now, [])
            self._log_hold((meta["namespace"], meta["name"]), meta["name"], invalid)
            return None
        variants = [variant_spec(v) for v in spec.variants]
        if version[1] is not None:
            self._specs[key] = (version, spec, variants)
        return spec, variants

    def _read_model(self, obj: Mapping[str, Any], spec: VariantAutoscalingSpec, world: World, now: float) -> Model:
        meta = obj["metadata"]
        ns = meta["namespace"]
        refs = {v.name: v.scale_target_ref.name for v in spec.variants}
        tuning = Tuning(
            tpot_slo_s=spec.slo.tpot_seconds,
            ttft_slo_s=spec.slo.ttft_seconds,
            headroom=spec.headroom,
            stale_after_s=self.settings.stale_after_s,
        )
        pods = world.pods_of(ns, refs)
        watched_for_s = now - self._watched.setdefault((ns, spec.model_id), now)
        observed, problem = observation(
            spec, ns, pods, world.snapshot, world.prometheus_error, watched_for_s, self.settings.retention_s, now
        )
        return Model(
            key=(ns, meta["name"]),
            spec=spec,
            refs=refs,
            unresolved=unresolved_target(
                namespace=ns, targets=list(refs.values()), deployments=world.deployments, hpa_targets=world.hpa_targets
            ),
            tuning=tuning,
            pods=pods,
            status=variant_status(refs, ns, world.deployments, pods, tuning.node_allowance_s),
            observed=observed,
            metrics_problem=problem,
        )

    def _decide(self, model: Model, variants: list[VariantSpec], now: float) -> tuple[Decision, Memory]:
        thresholds = thresholds_for(model.spec.model_id, model.key[0], *self.thresholds)
        memory = self.memory.get(model.key, Memory())
        return decide(self.settings.mode, variants, thresholds, model.status, model.observed, memory, now, model.tuning)

    def _hold_unread(self, obj: Mapping[str, Any], problem: str) -> None:
        """The cluster could not be read: hold, and say so where the object's status can still be written."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        now = self.clock()
        at = timestamp(now)
        ready = _condition("Ready", "False", "KubernetesUnavailable", f"holding replicas: {problem}", at)
        conditions = {**previous_conditions(obj, at=at), "Ready": ready}
        self._log_hold(key, obj.get("spec", {}).get("modelID", meta["name"]), problem)
        try:
            self._report(obj, conditions.values(), now)
        except Exception:  # the API is what failed: the log says it
            log.debug("status of %s/%s not written", *key, exc_info=True)

    def _log_hold(self, key: ObjectKey, model: str, cause: str | None) -> None:
        """A hold's cause when it starts or changes (its numbers aside), and when it clears."""
        ns = key[0]
        if cause is None:
            if self._holding.pop(key, None) is not None:
                log.info("%s in %s: holding no more", model, ns, extra={"model": model, "namespace": ns})
            return
        if self._holding.get(key) != gist(cause):
            self._holding[key] = gist(cause)
            fields = {"model": model, "namespace": ns, "reason": cause}
            log.warning("%s in %s: holding replicas: %s", model, ns, cause, extra=fields)

    # --- act and report ----------------------------------------------------------------------------------------

    def _act(self, obj: Mapping[str, Any], model: Model, decision: Decision, now: float) -> list[str]:
        """Scale each variant whose target moved; returns the failures, to report."""
        if decision.action == "hold":
            return []
        failed = []
        for name, target in decision.targets.items():
            before = model.status[name].desired
            if target == before:
                continue
            failure = self._scale(obj, model, decision, variant=name, before=before, target=target, now=now)
            if failure:
                failed.append(failure)
        return failed

    def _scale(
        self,
        obj: Mapping[str, Any],
        model: Model,
        decision: Decision,
        *,
        variant: str,
        before: int,
        target: int,
        now: float,
    ) -> str | None:
        """One variant to its target (logged, not sent, in dry run); what failed, else None. The target is absolute,
        so the retry next cycle never doubles a change."""
        ns, model_id, deployment = model.key[0], model.spec.model_id, model.refs[variant]
        direction = "up" if target > before else "down"
        self.telemetry.decisions.labels(model_id, ns, variant, direction, decision.action).inc()
        fields = {"model": model_id, "namespace": ns, "variant": variant, "from": before, "to": target}
        change = f"{model_id} in {ns}: {variant} {before} -> {target} replicas"
        if self.settings.dry_run:
            log.info("dry run: %s (%s)", change, decision.reason, extra={**fields, "reason": decision.reason})
            return None
        try:
            if self.kube.scale(ns, deployment, target):
                log.info("%s (%s)", change, decision.reason, extra={**fields, "reason": decision.reason})
                self.kube.event(obj, "Normal", "Scaled", f"{deployment}: {before} -> {target} ({decision.reason})", now)
        except Exception as error:
            self.telemetry.errors.labels("scale").inc()
            problem = kubernetes_problem(error, self.kube.timeout) or str(error).replace("\n", " ")[:300]
            log.warning("%s failed: %s; retrying next cycle", change, problem, extra={**fields, "reason": problem})
            return f"{deployment}: {problem}"
        return None

    def _report(
        self,
        obj: Mapping[str, Any],
        conditions: Iterable[Condition],
        now: float,
        variants: list[VariantReplicas] | None = None,
        decision: Decision | None = None,
    ) -> None:
        """Conditions, and the variants' rows and the decision when given (else the status keeps those it has); a
        Warning event when a condition turns bad."""
        meta = obj["metadata"]
        at = timestamp(now)
        previous = previous_conditions(obj, at=at)
        listed = [since(c, previous.get(c.type)) for c in conditions]
        seen = self._conditions.setdefault((meta["namespace"], meta["name"]), {})
        for c in listed:
            was = seen.get(c.type, previous[c.type].status if c.type in previous else None)
            if alarming(c) and was != c.status:
                self.kube.event(obj, "Warning", c.reason, c.message, now)
            seen[c.type] = c.status
        body: dict[str, Any] = {"conditions": [c.model_dump(by_alias=True) for c in listed]}
        if variants is not None:
            body["variants"] = [v.model_dump(by_alias=True, exclude_none=True) for v in variants]
        if decision is not None:
            last = LastDecision(action=decision.action, reason=decision.reason, time=at)
            body["lastDecision"] = last.model_dump(by_alias=True)
        self.kube.patch_status(meta["namespace"], meta["name"], body)

    def _export(self, model: Model, decision: Decision, acted: bool) -> None:
        ns, model_id = model.key[0], model.spec.model_id
        t = self.telemetry
        t.gauge(t.metrics_available, model_id, ns).set(1 if decision.metrics_available else 0)
        for v in model.spec.variants:
            labels = (model_id, ns, v.name, v.accelerator_type)
            st = model.status.get(v.name)
            t.gauge(t.current, *labels).set(st.current if st else 0)
            t.gauge(t.desired, *labels).set(decision.targets.get(v.name, 0) if acted else (st.desired if st else 0))
            t.gauge(t.cost, *labels).set(v.cost)
            t.gauge(t.capacity_limited, *labels).set(1 if v.name in decision.limited else 0)
            if v.name in decision.capacity_rps:
                t.gauge(t.capacity, *labels).set(decision.capacity_rps[v.name])


def gist(cause: str) -> str:
    """A cause without its numbers: a hold whose figures move each pass is still the same hold."""
    return re.sub(r"\d+(\.\d+)?", "#", cause)


def timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


# --- status, as pure functions of what a pass found -------------------------------------------------------------


def unresolved_target(
    *,
    namespace: str,
    targets: Collection[str],
    deployments: Container[tuple[str, str]],
    hpa_targets: Container[tuple[str, str]],
) -> tuple[str, str] | None:
    """Why the model's Deployments cannot be scaled, as (reason, message); None when they all can."""
    missing = [t for t in targets if (namespace, t) not in deployments]
    if missing:
        return "DeploymentNotFound", f"no Deployment {', '.join(missing)} in namespace {namespace}"
    owned = [t for t in targets if (namespace, t) in hpa_targets]
    if owned:
        return (
            "OwnedByHPA",
            f"a HorizontalPodAutoscaler targets {', '.join(owned)}: remove it or this VariantAutoscaling",
        )
    return None


def hold_cause(unresolved: tuple[str, str] | None, metrics_problem: str | None) -> str | None:
    """Why the model's replicas stay where they are, or None: it acts only when its targets and metrics are good."""
    causes = [c for c in (unresolved[1] if unresolved else None, metrics_problem) if c]
    return "; ".join(causes) or None


def invalid_spec_condition(invalid: str, *, at: str) -> Condition:
    return _condition("TargetResolved", "False", "InvalidSpec", invalid, at)


def target_condition(unresolved: tuple[str, str] | None, *, deployments: int, at: str) -> Condition:
    if unresolved is None:
        return _condition("TargetResolved", "True", "Resolved", f"{deployments} Deployments found", at)
    return _condition("TargetResolved", "False", *unresolved, at)


def metrics_condition(problem: str | None, *, reporting: int, at: str) -> Condition:
    if problem:
        return _condition("MetricsAvailable", "False", "MetricsUnavailable", f"{problem}; holding replicas", at)
    return _condition("MetricsAvailable", "True", "MetricsFresh", f"{reporting} replicas reporting", at)


def capacity_condition(limited: Mapping[str, str], *, at: str) -> Condition:
    """CapacityLimited: which variants the cluster cannot supply, each with the scheduler's message."""
    if not limited:
        return _condition("CapacityLimited", "False", "Supplied", "every variant's pods are placed", at)
    said = "; ".join(f"{name}: {message}" for name, message in sorted(limited.items()))
    return _condition("CapacityLimited", "True", "Unschedulable", f"{said}; planning the other variants", at)


def ready_condition(*, held: str | None, failed: list[str], decision: Decision, dry_run: bool, at: str) -> Condition:
    if held:
        return _condition("Ready", "False", "Holding", f"holding replicas: {held}", at)
    if failed:
        return _condition("Ready", "False", "ScaleFailed", f"retrying next cycle: {'; '.join(failed)}", at)
    mode = "dry run: " if dry_run else ""
    return _condition("Ready", "True", "Reconciled", f"{mode}{decision.action}: {decision.reason}", at)


def _condition(kind: ConditionType, status: ConditionStatus, reason: str, message: str, at: str) -> Condition:
    return Condition(type=kind, status=status, reason=reason, message=message, last_transition_time=at)


def previous_conditions(obj: Mapping[str, Any], *, at: str) -> dict[str, Condition]:
    """The conditions the object's status holds, a missing reason or message read as empty and a missing time as
    `at`; entries that are not conditions of ours are left out."""
    found: dict[str, Condition] = {}
    for c in obj.get("status", {}).get("conditions", []):
        try:
            condition = Condition.model_validate({"reason": "", "message": "", "lastTransitionTime": at, **c})
        except ValidationError:
            continue
        found[condition.type] = condition
    return found


def since(condition: Condition, previous: Condition | None) -> Condition:
    """The condition with the time its status last changed: the previous one's when the status is the same."""
    if previous is None or previous.status != condition.status:
        return condition
    return condition.model_copy(update={"last_transition_time": previous.last_transition_time})


def alarming(condition: Condition) -> bool:
    """A condition worth a Warning event when it turns so: CapacityLimited is the one bad when True, and Ready only
    repeats a cause another condition reports."""
    bad = "True" if condition.type == "CapacityLimited" else "False"
    return condition.type != "Ready" and condition.status == bad


def measured(snapshot: Snapshot | None, pods: Iterable[ServingPod]) -> dict[str, dict[str, Any]]:
    """Per variant, summed over its ready pods: KV-cache capacity in tokens and generated tokens per second."""
    if snapshot is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for pod in pods:
        m = snapshot.pods.get((pod.namespace, pod.name)) if pod.ready else None
        if m is None:
            continue
        slot = out.setdefault(pod.variant, {"kv_cache_tokens": 0, "generation_tokens_per_second": 0.0})
        slot["kv_cache_tokens"] += m.kv_tokens or 0
        slot["generation_tokens_per_second"] += m.generation_tps or 0.0
    return out


def variant_rows(
    variants: Iterable[str],
    status: Mapping[str, VariantStatus],
    targets: Mapping[str, int],
    measured: Mapping[str, Mapping[str, Any]],
) -> list[VariantReplicas]:
    """The status's row per variant: its replicas, its target (else what its Deployment asks), what it measured."""
    rows = []
    for name in variants:
        st = status.get(name)
        target = targets.get(name)
        rows.append(
            VariantReplicas(
                name=name,
                current_replicas=st.current if st else 0,
                ready_replicas=st.ready if st else 0,
                desired_replicas=target if target is not None else (st.desired if st else 0),
                **measured.get(name, {}),
            )
        )
    return rows
