"""The bundled autoscaler's deployment (config; component to come)."""

from typing import Literal

from pydantic import AnyHttpUrl, Field

from autoscaler.api import ThresholdOverride, Thresholds
from components.args import ArgsModel, DnsLabel, PinnedImage


class AutoscalerArgs(ArgsModel):
    enabled: bool = True
    namespace: DnsLabel = "wva-system"
    mode: Literal["default", "wva-v1"] = "default"
    interval_seconds: int = Field(30, ge=5, le=600)
    dry_run: bool = False
    # Defaults to the monitoring stack's Prometheus; required when monitoring is disabled.
    prometheus_url: AnyHttpUrl | None = None
    image: PinnedImage | None = None
    thresholds: Thresholds = Thresholds()
    overrides: list[ThresholdOverride] = Field(default_factory=list)
