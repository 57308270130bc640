"""Model serving: llm-d style model servers, one Deployment per GPU variant, one endpoint per model."""

from typing import Literal

import pulumi
from pydantic import Field, ValidationInfo, field_validator, model_validator

from autoscaler.accelerators import ACCELERATORS
from components.args import ArgsModel, DnsLabel, PinnedImage, duplicates, problems
from components.kube import namespace

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
    gpus_per_replica: int = Field(4, ge=1, le=16)
    cost: float = Field(gt=0, description="USD per replica-hour")
    max_replicas: int = Field(4, ge=1)
    min_replicas: int = Field(0, ge=0)

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

    @field_validator("min_replicas")
    @classmethod
    def _not_above_max(cls, minimum: int, info: ValidationInfo) -> int:
        maximum = info.data.get("max_replicas")
        if maximum is not None and minimum > maximum:
            raise ValueError(f"must be <= maxReplicas ({maximum})")
        return minimum


class ModelArgs(ArgsModel):
    name: DnsLabel
    model_id: str = Field(alias="modelID", min_length=1)
    namespace: DnsLabel = "llm"
    variants: list[VariantArgs] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_variant_names(self) -> "ModelArgs":
        found = duplicates([v.name for v in self.variants], "variants")
        if found:
            raise problems(found)
        return self


class ModelNamespace(pulumi.ComponentResource):
    """A namespace model servers run in, shared by the models that name it and by their storage claim.

    Pod Security `baseline`: the vLLM and TGI images run as root; everything else in it passes `restricted`.
    """

    def __init__(self, name: str, namespace_name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-platform:model_serving:ModelNamespace", name, None, opts)
        self.namespace = namespace(
            f"{name}-namespace", namespace_name, "model-serving", "baseline", pulumi.ResourceOptions(parent=self)
        )
        self.name = self.namespace.metadata.name
        self.register_outputs({"name": self.name})
