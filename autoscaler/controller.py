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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from autoscaler.api import (
    THRESHOLDS_CONFIGMAP,
    ThresholdOverride,
    Thresholds,
    VariantAutoscalingSpec,
    parse_thresholds_configmap,
    thresholds_for,
)
from autoscaler.engine import Decision, Memory, Mode, Tuning, VariantStatus, decide
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
    _conditions: dict[ObjectKey, dict[str, str]] = field(default_factory=dict)
    _watched: dict[tuple[str, str], float] = field(default_factory=dict)  # (namespace, model id) -> first seen
    _holding: dict[ObjectKey, str] = field(default_factory=dict)  # the cause last logged, numbers left out

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
        meta = obj["metadata"]
        ns, key = meta["namespace"], (meta["namespace"], meta["name"])
        now = self.clock()
        try:
            spec = VariantAutoscalingSpec.model_validate(obj.get("spec", {}))
        except ValidationError as error:
            invalid = str(error).replace("\n", " ")
            self._report(obj, {"TargetResolved": ("False", "InvalidSpec", invalid)}, now, [])
            self._log_hold(key, meta["name"], invalid)
            return
        refs = {v.name: v.scale_target_ref.name for v in spec.variants}
        missing = [r for r in refs.values() if (ns, r) not in world.deployments]
        owned = [r for r in refs.values() if (ns, r) in world.hpa_targets]
        conditions: dict[str, tuple[str, str, str]] = {}
        if missing:
            conditions["TargetResolved"] = (
                "False",
                "DeploymentNotFound",
                f"no Deployment {', '.join(missing)} in namespace {ns}",
            )
        elif owned:
            conditions["TargetResolved"] = (
                "False",
                "OwnedByHPA",
                f"a HorizontalPodAutoscaler targets {', '.join(owned)}: remove it or this VariantAutoscaling",
            )
        else:
            conditions["TargetResolved"] = ("True", "Resolved", f"{len(refs)} Deployments found")
        tuning = Tuning(
            tpot_slo_s=spec.slo.tpot_seconds,
            ttft_slo_s=spec.slo.ttft_seconds,
            headroom=spec.headroom,
            stale_after_s=self.settings.stale_after_s,
        )
        pods = world.pods_of(ns, refs)
        status = variant_status(refs, ns, world.deployments, pods, tuning.node_allowance_s)
        watched_since = self._watched.setdefault((ns, spec.model_id), now)
        observed, metrics_problem = observation(
            spec,
            ns,
            pods,
            world.snapshot,
            world.prometheus_error,
            now - watched_since,
            self.settings.retention_s,
            now,
        )
        thresholds = thresholds_for(spec.model_id, ns, *self.thresholds)
        variants = [variant_spec(v) for v in spec.variants]
        decision, memory = decide(
            self.settings.mode, variants, thresholds, status, observed, self.memory.get(key, Memory()), now, tuning
        )
        metrics_problem = metrics_problem or (None if decision.metrics_available else decision.reason)
        if metrics_problem:
            conditions["MetricsAvailable"] = ("False", "MetricsUnavailable", f"{metrics_problem}; holding replicas")
        else:
            conditions["MetricsAvailable"] = ("True", "MetricsFresh", f"{len(observed.samples)} replicas reporting")
        unresolved = conditions["TargetResolved"][2] if conditions["TargetResolved"][0] == "False" else None
        held = "; ".join(c for c in (unresolved, metrics_problem) if c)
        self._log_hold(key, spec.model_id, held or None)
        conditions["CapacityLimited"] = capacity_condition(decision.limited)
        failed = []
        if not held:
            self.memory[key] = memory
            failed = self._act(obj, spec, refs, status, decision, now)
        mode = "dry run: " if self.settings.dry_run else ""
        if held:
            conditions["Ready"] = ("False", "Holding", f"holding replicas: {held}")
        elif failed:
            conditions["Ready"] = ("False", "ScaleFailed", f"retrying next cycle: {'; '.join(failed)}")
        else:
            conditions["Ready"] = ("True", "Reconciled", f"{mode}{decision.action}: {decision.reason}")
        measured = self._measured(spec, ns, world)
        rows = [(n, status.get(n), decision.targets.get(n), measured.get(n, {})) for n in refs]
        self._report(obj, conditions, now, rows, decision)
        self._export(spec, ns, status, decision, acted=not held)

    def _hold_unread(self, obj: Mapping[str, Any], problem: str) -> None:
        """The cluster could not be read: hold, and say so where the object's status can still be written."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        conditions = {
            c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
            for c in obj.get("status", {}).get("conditions", [])
        }
        conditions["Ready"] = ("False", "KubernetesUnavailable", f"holding replicas: {problem}")
        self._log_hold(key, obj.get("spec", {}).get("modelID", meta["name"]), problem)
        try:
            self._report(obj, conditions, self.clock())
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

    @staticmethod
    def _measured(spec: VariantAutoscalingSpec, ns: str, world: World) -> dict[str, dict[str, Any]]:
        """Per variant, summed over its ready pods: KV-cache capacity in tokens and generated tokens per second."""
        if world.snapshot is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for pod in world.pods_of(ns, [v.name for v in spec.variants]):
            m = world.snapshot.pods.get((ns, pod.name)) if pod.ready else None
            if m is None:
                continue
            slot = out.setdefault(pod.variant, {"kvCacheTokens": 0, "generationTokensPerSecond": 0.0})
            slot["kvCacheTokens"] += m.kv_tokens or 0
            slot["generationTokensPerSecond"] += m.generation_tps or 0.0
        return out

    # --- act and report ----------------------------------------------------------------------------------------

    def _act(
        self,
        obj: Mapping[str, Any],
        spec: VariantAutoscalingSpec,
        refs: Mapping[str, str],
        status: Mapping[str, VariantStatus],
        decision: Decision,
        now: float,
    ) -> list[str]:
        """Scale each variant to its target; returns the failures, to report."""
        ns = obj["metadata"]["namespace"]
        failed: list[str] = []
        if decision.action == "hold":
            return failed
        for name, target in decision.targets.items():
            before = status[name].desired
            if target == before:
                continue
            direction = "up" if target > before else "down"
            self.telemetry.decisions.labels(spec.model_id, ns, name, direction, decision.action).inc()
            fields = {"model": spec.model_id, "namespace": ns, "variant": name, "from": before, "to": target}
            change = f"{spec.model_id} in {ns}: {name} {before} -> {target} replicas"
            if self.settings.dry_run:
                log.info("dry run: %s (%s)", change, decision.reason, extra={**fields, "reason": decision.reason})
                continue
            try:
                if self.kube.scale(ns, refs[name], target):
                    log.info("%s (%s)", change, decision.reason, extra={**fields, "reason": decision.reason})
                    message = f"{refs[name]}: {before} -> {target} ({decision.reason})"
                    self.kube.event(obj, "Normal", "Scaled", message, now)
            except Exception as error:  # retried next cycle; the target is absolute, so a retry never doubles
                self.telemetry.errors.labels("scale").inc()
                problem = kubernetes_problem(error, self.kube.timeout) or str(error).replace("\n", " ")[:300]
                log.warning("%s failed: %s; retrying next cycle", change, problem, extra={**fields, "reason": problem})
                failed.append(f"{refs[name]}: {problem}")
        return failed

    def _report(
        self,
        obj: Mapping[str, Any],
        conditions: Mapping[str, tuple[str, str, str]],
        now: float,
        variants: list[tuple[str, VariantStatus | None, int | None, dict[str, Any]]] | None = None,
        decision: Decision | None = None,
    ) -> None:
        """Conditions, and the variants' rows and the decision when given (else the status keeps those it has)."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        previous = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        listed = []
        for kind, (state, reason, message) in conditions.items():
            old = previous.get(kind)
            since = old["lastTransitionTime"] if old and old.get("status") == state else stamp
            listed.append(
                {"type": kind, "status": state, "reason": reason, "message": message, "lastTransitionTime": since}
            )
            was = self._conditions.setdefault(key, {}).get(kind, old.get("status") if old else None)
            warn = "True" if kind == "CapacityLimited" else "False"  # CapacityLimited is the one bad when True
            if state == warn and was != warn and kind != "Ready":  # Ready repeats the cause already reported
                self.kube.event(obj, "Warning", reason, message, now)
            self._conditions[key][kind] = state
        body: dict[str, Any] = {"conditions": listed}
        if variants is not None:
            body["variants"] = [
                {
                    "name": name,
                    "currentReplicas": st.current if st else 0,
                    "readyReplicas": st.ready if st else 0,
                    "desiredReplicas": target if target is not None else (st.desired if st else 0),
                    **measured,
                }
                for name, st, target, measured in variants
            ]
        if decision is not None:
            body["lastDecision"] = {"action": decision.action, "reason": decision.reason, "time": stamp}
        self.kube.patch_status(meta["namespace"], meta["name"], body)

    def _export(
        self,
        spec: VariantAutoscalingSpec,
        ns: str,
        status: Mapping[str, VariantStatus],
        decision: Decision,
        acted: bool,
    ) -> None:
        self.telemetry.metrics_available.labels(spec.model_id, ns).set(1 if decision.metrics_available else 0)
        for v in spec.variants:
            labels = (spec.model_id, ns, v.name, v.accelerator_type)
            st = status.get(v.name)
            self.telemetry.current.labels(*labels).set(st.current if st else 0)
            self.telemetry.desired.labels(*labels).set(
                decision.targets.get(v.name, 0) if acted else (st.desired if st else 0)
            )
            self.telemetry.cost.labels(*labels).set(v.cost)
            self.telemetry.capacity_limited.labels(*labels).set(1 if v.name in decision.limited else 0)
            if v.name in decision.capacity_rps:
                self.telemetry.capacity.labels(*labels).set(decision.capacity_rps[v.name])


def gist(cause: str) -> str:
    """A cause without its numbers: a hold whose figures move each pass is still the same hold."""
    return re.sub(r"\d+(\.\d+)?", "#", cause)


def capacity_condition(limited: Mapping[str, str]) -> tuple[str, str, str]:
    """CapacityLimited: which variants the cluster cannot supply, each with the scheduler's message."""
    if not limited:
        return ("False", "Supplied", "every variant's pods are placed")
    said = "; ".join(f"{name}: {message}" for name, message in sorted(limited.items()))
    return ("True", "Unschedulable", f"{said}; planning the other variants")
