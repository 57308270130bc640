"""What a stack says about a model: its variants (accelerator, GPUs, price, replica range, runtime), its objectives
and how clients reach it. Every part that builds something per model takes these."""

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from autoscaler.accelerators import ACCELERATORS, batch_defaults
from autoscaler.api import DEFAULT_GPUS_PER_REPLICA, DEFAULT_HEADROOM, DEFAULT_MAX_REPLICAS, ReplicaProfile, Slo
from components.args import ArgsModel, DnsLabel, PinnedImage, Quantity, duplicates, problems

Runtime = Literal["vllm", "tgi", "simulator"]
GPU_RUNTIMES = ("vllm", "tgi")


class VariantArgs(ArgsModel):
    """One way to serve a model: an accelerator type, GPUs per replica, a price and a replica range.

    Fields are checked in order, so each check below sees the fields declared before it.
    """

    name: DnsLabel
    runtime: Runtime = "vllm"
    image: PinnedImage | None = None
    # Required for an accelerator type the platform does not know; overrides the product affinity otherwise.
    node_selector: dict[str, str] | None = None
    accelerator_type: str = Field(min_length=1)
    gpus_per_replica: int = Field(DEFAULT_GPUS_PER_REPLICA, ge=1, le=16)
    cost: float = Field(gt=0, description="USD per replica-hour")
    max_replicas: int = Field(DEFAULT_MAX_REPLICAS, ge=1)
    min_replicas: int = Field(0, ge=0)
    # Per replica; the defaults follow the runtime and the GPU count.
    cpu: Quantity | None = None
    memory: Quantity | None = None
    # vLLM's per-step token budget (chunked prefill); default vLLM's own for the accelerator's memory.
    max_num_batched_tokens: int | None = Field(None, ge=1)
    # The autoscaler's priors for this variant until it has measured its own (see autoscaler.api.Variant).
    cold_start_seconds: float | None = Field(None, gt=0)
    profile: ReplicaProfile | None = None

    @property
    def uses_gpus(self) -> bool:
        return self.runtime in GPU_RUNTIMES

    @field_validator("accelerator_type")
    @classmethod
    def _known_or_selected(cls, accelerator: str, info: ValidationInfo) -> str:
        if accelerator not in ACCELERATORS and not info.data.get("node_selector"):
            raise ValueError(f"unknown type; use one of {', '.join(ACCELERATORS)}, or give the variant a nodeSelector")
        return accelerator

    @field_validator("gpus_per_replica")
    @classmethod
    def _splits_for_tensor_parallelism(cls, gpus: int, info: ValidationInfo) -> int:
        if info.data.get("runtime") in GPU_RUNTIMES and gpus & (gpus - 1):
            raise ValueError("must be a power of two: the tensor parallel size has to divide the model")
        return gpus

    @field_validator("max_num_batched_tokens")
    @classmethod
    def _room_for_every_running_request(cls, budget: int | None, info: ValidationInfo) -> int | None:
        seqs = batch_defaults(info.data.get("accelerator_type") or "")[1]
        if budget is not None and budget < seqs:
            raise ValueError(f"must be >= maxNumSeqs ({seqs}): vLLM refuses a budget below its running requests")
        return budget

    @property
    def batch(self) -> tuple[int, int]:
        """(max_num_batched_tokens, max_num_seqs) the server runs with: what the simulator assumes too."""
        budget, seqs = batch_defaults(self.accelerator_type)
        return self.max_num_batched_tokens or budget, seqs

    @field_validator("min_replicas")
    @classmethod
    def _not_above_max(cls, minimum: int, info: ValidationInfo) -> int:
        maximum = info.data.get("max_replicas")
        if maximum is not None and minimum > maximum:
            raise ValueError(f"must be <= maxReplicas ({maximum})")
        return minimum


class GatewayRef(ArgsModel):
    name: str = Field(min_length=1)
    namespace: DnsLabel | None = None


class EndpointArgs(ArgsModel):
    """How clients outside the cluster reach a model; inside, its Service always answers on the model's name."""

    route: Literal["none", "ingress", "httproute"] = "none"
    host: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    tls_secret_name: DnsLabel | None = None
    ingress_class_name: str | None = None
    gateway: GatewayRef | None = None
    # Load-aware routing: an InferencePool with its endpoint picker (the HTTPRoute then targets the pool).
    inference_pool: bool = False

    @model_validator(mode="after")
    def _route_has_what_it_needs(self) -> "EndpointArgs":
        found = []
        if self.route != "none" and self.host is None:
            found.append(("host", f"required when route is {self.route}"))
        if self.route == "httproute" and self.gateway is None:
            found.append(("gateway", "required when route is httproute (the Gateway that terminates TLS)"))
        if self.route != "ingress" and (self.tls_secret_name or self.ingress_class_name):
            found.append(("route", "tlsSecretName and ingressClassName apply to route: ingress only"))
        if found:
            raise problems(found)
        return self


class ModelArgs(ArgsModel):
    name: DnsLabel
    model_id: str = Field(alias="modelID", min_length=1)
    namespace: DnsLabel = "llm"
    variants: list[VariantArgs] = Field(min_length=1)
    # The latency the model's traffic must be served within: the autoscaler, alerts and the benchmark use it.
    slo: Slo = Slo()
    # Spare capacity the autoscaler holds over the measured demand (0.1: 10%); more absorbs bursts shorter than a
    # cold start, at its cost (docs/benchmark.md shows the trade-off).
    headroom: float = Field(DEFAULT_HEADROOM, ge=0, le=4)
    max_model_len: int | None = Field(None, ge=128)
    gpu_memory_utilization: float = Field(0.95, gt=0, le=1)
    # Passed to every variant's server after the platform's own arguments.
    extra_args: list[str] = Field(default_factory=list)
    endpoint: EndpointArgs = EndpointArgs()

    @model_validator(mode="after")
    def _unique_variant_names(self) -> "ModelArgs":
        found = duplicates([v.name for v in self.variants], "variants")
        if found:
            raise problems(found)
        return self
