"""What a stack says about the bundled autoscaler: where and how it runs, the Prometheus it reads (and how it
authenticates there), the API server it may reach, and its thresholds."""

from typing import Literal

from pydantic import AnyHttpUrl, Field, IPvAnyNetwork

from autoscaler.api import ThresholdOverride, Thresholds
from components.args import ArgsModel, DnsLabel, PinnedImage


class PrometheusAccess(ArgsModel):
    """Credentials for a Prometheus (or Thanos) that is not the platform's own, as existing objects."""

    ca_config_map: str | None = None  # key ca.crt
    token_secret: str | None = None  # key token
    basic_auth_secret: str | None = None  # keys username and password


class AutoscalerArgs(ArgsModel):
    enabled: bool = True
    namespace: DnsLabel = "wva-system"
    mode: Literal["default", "wva-v1"] = "default"
    interval_seconds: int = Field(30, ge=5, le=600)
    dry_run: bool = False
    log_format: Literal["text", "json"] = "text"  # one JSON object per log line for log pipelines
    replicas: int = Field(2, ge=1, le=5)
    # Defaults to the monitoring stack's Prometheus; required when monitoring is disabled.
    prometheus_url: AnyHttpUrl | None = None
    prometheus_access: PrometheusAccess = PrometheusAccess()
    image: PinnedImage | None = None
    # The API server's addresses (`kubectl get endpoints kubernetes`); empty: any address on its ports.
    api_server_cidrs: list[IPvAnyNetwork] = Field(default_factory=list)
    thresholds: Thresholds = Thresholds()
    overrides: list[ThresholdOverride] = Field(default_factory=list)
