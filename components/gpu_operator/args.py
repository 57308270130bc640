"""What a stack says about the GPU Operator: driver and toolkit, MIG, time-slicing, DCGM scraping, GPU taints."""

from typing import Literal

from pydantic import Field

from components.args import ArgsModel, DnsLabel, Duration, Toleration


class TimeSlicing(ArgsModel):
    """Share each GPU between this many pods (no memory isolation: for dev and small models only)."""

    replicas: int = Field(ge=2, le=64)


class GpuOperatorArgs(ArgsModel):
    enabled: bool = True
    namespace: DnsLabel = "gpu-operator"
    driver: Literal["operator", "preinstalled"] = "operator"
    toolkit: bool = True
    mig_strategy: Literal["none", "single", "mixed"] = "single"
    time_slicing: TimeSlicing | None = None
    dcgm_scrape_interval: Duration = "15s"
    # Taints of GPU nodes besides nvidia.com/gpu:NoSchedule, which is always tolerated.
    tolerations: list[Toleration] = Field(default_factory=list)
