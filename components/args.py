"""Building blocks of the components' args models: strict camelCase models and checked Kubernetes value types."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DURATION = r"^[0-9]+(ms|s|m|h|d|w|y)$"
# How a value that misses one of these patterns is explained to the user.
PATTERN_HINTS = {
    DNS_LABEL: "must be a DNS-1123 label (lower case letters, digits and '-', at most 63)",
    QUANTITY: "must be a Kubernetes quantity such as 100Gi",
    DURATION: "must be a duration such as 15s, 5m or 30d",
}

# Namespaces and object names derived from config.
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL)]
# A Kubernetes resource quantity such as 100Gi or 500m.
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY)]
# A Prometheus duration such as 15s or 30d.
Duration = Annotated[str, StringConstraints(pattern=DURATION)]


class ArgsModel(BaseModel):
    """camelCase keys as in the stack YAML; unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Toleration(ArgsModel):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


GPU_TOLERATION = Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


def problems(found: list[tuple[str, str]]) -> PydanticCustomError:
    """Several problems of one object at once, each with its key path relative to that object.

    Raised from a model validator; the stack config turns each into its own `full.key.path: message` line.
    """
    return PydanticCustomError("problems", "{count} problems", {"count": len(found), "problems": found})


def _pinned(image: str) -> str:
    """Images are pinned by tag or digest; `latest` or no tag would change under a running platform."""
    name = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in name or name.endswith(":latest")):
        raise ValueError("must be pinned to a tag or digest, not 'latest'")
    return image


PinnedImage = Annotated[str, AfterValidator(_pinned)]


def duplicates(names: list[str], list_key: str) -> list[tuple[str, str]]:
    """One problem per repeated name, pointing at the repeat and at the first use."""
    first: dict[str, int] = {}
    found = []
    for index, name in enumerate(names):
        if name in first:
            found.append((f"{list_key}[{index}].name", f"duplicate name '{name}' (first at {list_key}[{first[name]}])"))
        first.setdefault(name, index)
    return found
