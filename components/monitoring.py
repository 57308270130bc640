"""Monitoring: kube-prometheus-stack with the vLLM and GPU dashboards and rules (config; component to come)."""

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
