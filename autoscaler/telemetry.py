"""The autoscaler's own metrics: what it decided and why, per variant, for dashboards and for HPA/KEDA users."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from autoscaler import api

VARIANT_LABELS = ("model_id", "model_namespace", "variant", "accelerator")


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.desired = Gauge(api.METRIC_DESIRED_REPLICAS, "Replicas the autoscaler wants", VARIANT_LABELS, registry=r)
        self.current = Gauge(api.METRIC_CURRENT_REPLICAS, "Replicas the Deployment has", VARIANT_LABELS, registry=r)
        self.cost = Gauge(api.METRIC_VARIANT_COST, "USD per replica-hour", VARIANT_LABELS, registry=r)
        self.capacity = Gauge(
            api.METRIC_VARIANT_CAPACITY,
            "Requests/s one replica is planned to serve within the SLO",
            VARIANT_LABELS,
            registry=r,
        )
        self.decisions = Counter(
            api.METRIC_DECISIONS.removesuffix("_total"),
            "Scaling actions taken",
            ("model_id", "model_namespace", "variant", "direction", "reason"),
            registry=r,
        )
        self.metrics_available = Gauge(
            api.METRIC_METRICS_AVAILABLE,
            "1 when the model's metrics were usable",
            ("model_id", "model_namespace"),
            registry=r,
        )
        self.capacity_limited = Gauge(
            api.METRIC_CAPACITY_LIMITED,
            "1 while the cluster cannot place the variant's pods (the plan uses other variants)",
            VARIANT_LABELS,
            registry=r,
        )
        self.reconcile_seconds = Histogram(api.METRIC_RECONCILE_SECONDS, "Duration of a reconcile pass", registry=r)
        self.errors = Counter(
            api.METRIC_RECONCILE_ERRORS.removesuffix("_total"), "Failed API or Prometheus calls", ("call",), registry=r
        )
        self.last_reconcile = Gauge(api.METRIC_LAST_RECONCILE, "Unix time of the last complete pass", registry=r)
