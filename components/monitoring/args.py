"""What a stack says about monitoring: Prometheus' retention, storage and scrape interval, Grafana, and what the
alerts compare against."""

from pydantic import Field

from components.args import ArgsModel, DnsLabel, Duration, Quantity


class MonitoringArgs(ArgsModel):
    enabled: bool = True
    namespace: DnsLabel = "monitoring"
    retention: Duration = "15d"
    storage_size: Quantity = "50Gi"
    storage_class: str | None = None
    scrape_interval: Duration = "15s"
    grafana: bool = True
    # Used by recording rules and alerts when a model does not state its own.
    default_ttft_slo_seconds: float = Field(2.0, gt=0)
    # Mean KV-cache usage of a variant that counts as saturated (alert after 10 minutes).
    kv_cache_alert_threshold: float = Field(0.9, gt=0, le=1)
    # Where the alerts' runbook links point; each alert appends its own anchor.
    runbook_url: str = Field("README.md", min_length=1)
