"""What the autoscaler tells about itself: its metrics (what it decided and why, per variant, for dashboards and
for HPA/KEDA users) and its log (one line per change, hold and leadership change; plain text or JSON)."""

import datetime as dt
import json
import logging
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from autoscaler import api

LogFormat = Literal["text", "json"]
# What a log line may carry besides its message, e.g. `extra={"model": ..., "from": 2, "to": 3}`.
LOG_FIELDS = ("model", "namespace", "variant", "from", "to", "reason")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message, the fields the line carries, and a traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
            **{name: record.__dict__[name] for name in LOG_FIELDS if name in record.__dict__},
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(log_format: LogFormat) -> None:
    handler = logging.StreamHandler()
    text = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handler.setFormatter(JsonFormatter() if log_format == "json" else text)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # urllib3 warns of each retry with the full URL, query included; the autoscaler says what failed in its own words.
    logging.getLogger("urllib3").setLevel(logging.ERROR)


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
        self._children: dict[tuple[str, tuple[str, ...]], Gauge] = {}

    def gauge(self, metric: Gauge, *labels: str) -> Gauge:
        """A gauge's child for these labels, looked up once: `labels()` validates and locks on every call, and a
        pass sets five gauges for each of hundreds of variants."""
        key = (metric._name, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
