"""The whole stack config as one pydantic model: the ONLY module that reads the Pulumi config.

Every part is validated before any resource is declared; every error names its key path, all at once.
"""

import difflib
import json
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

import pulumi
from kubernetes_validate.utils import all_versions, major_minor
from pulumi.runtime.config import CONFIG, get_config, get_config_env
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from autoscaler.api import SimulatorSettings
from components.args import PATTERN_HINTS, ArgsModel, duplicates, problems
from components.autoscaling.args import AutoscalerArgs
from components.gpu_operator.args import GpuOperatorArgs
from components.model_serving.args import ModelArgs
from components.model_storage.args import ModelStorageArgs, storage_problems
from components.monitoring.args import MonitoringArgs

PROJECT = "llm-platform"


class KubernetesTarget(ArgsModel):
    """The cluster: kubeconfig (a path or its content) and context default to the ambient ones."""

    kubeconfig: str | None = None
    context: str | None = None
    # The Kubernetes version the offline render validates the manifests against.
    version: str = Field("1.34", pattern=r"^1\.[0-9]+$")

    @field_validator("version")
    @classmethod
    def _schemas_exist(cls, version: str) -> str:
        known = sorted({major_minor(v) for v in all_versions()}, key=lambda v: int(v.split(".")[1]))
        if version not in known:
            raise ValueError(f"no schemas for Kubernetes {version}; use {known[0]} to {known[-1]}")
        return version


class StackConfig(ArgsModel):
    kubernetes: KubernetesTarget = KubernetesTarget()
    gpu_operator: GpuOperatorArgs = GpuOperatorArgs()
    monitoring: MonitoringArgs = MonitoringArgs()
    model_storage: ModelStorageArgs = ModelStorageArgs()
    models: list[ModelArgs] = Field(min_length=1)
    autoscaler: AutoscalerArgs = AutoscalerArgs()
    simulator: SimulatorSettings = SimulatorSettings()

    @model_validator(mode="after")
    def _parts_agree(self) -> "StackConfig":
        found = duplicates([m.name for m in self.models], "models")
        found += storage_problems(self.model_storage, self.models)
        found += self._clashing_deployments()
        if self.autoscaler.enabled and not self.monitoring.enabled and self.autoscaler.prometheus_url is None:
            found.append(("autoscaler.prometheusUrl", "required when monitoring.enabled is false"))
        for i, m in enumerate(self.models):
            if any(v.min_replicas > 0 for v in m.variants):
                continue
            if not self.autoscaler.enabled:
                found.append(
                    (f"models[{i}].variants", "no variant has minReplicas >= 1 and the autoscaler is disabled")
                )
            elif not m.endpoint.inference_pool:
                found.append(
                    (
                        f"models[{i}].variants",
                        "every variant allows 0 replicas, but nothing could wake the model from zero: set "
                        "minReplicas >= 1 on one variant, or endpoint.inferencePool: true (requests waiting at its "
                        "endpoint picker wake it)",
                    )
                )
        served = {(m.model_id, m.namespace) for m in self.models}
        found += [
            (f"autoscaler.overrides[{i}]", f"no model '{o.model_id}' in namespace '{o.namespace}'")
            for i, o in enumerate(self.autoscaler.overrides)
            if (o.model_id, o.namespace) not in served
        ]
        if found:
            raise problems(found)
        return self

    def _clashing_deployments(self) -> list[tuple[str, str]]:
        """Variant names become Deployment names, so they must be unique per namespace across models."""
        first: dict[tuple[str, str], str] = {}
        found = []
        for i, model in enumerate(self.models):
            for j, variant in enumerate(model.variants):
                where = f"models[{i}].variants[{j}].name"
                seen = first.setdefault((model.namespace, variant.name), where)
                if seen != where and not seen.startswith(f"models[{i}]."):
                    found.append((where, f"'{variant.name}' is also a variant of {seen.split('.')[0]}"))
        return found


class ConfigError(pulumi.RunError):
    """Invalid stack config; RunError makes `pulumi up` print the messages without a traceback."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("invalid stack config:\n  " + "\n  ".join(errors))


def parse_stack_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate the project's config keys (without the `llm-platform:` prefix) into the stack model."""
    try:
        return StackConfig.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(list(_messages(error))) from None


def load_stack_config() -> StackConfig:
    """The stack's config as `pulumi up` (or the render, under mocks) hands it to the program."""
    prefix = f"{PROJECT}:"
    keys = {*CONFIG.get(), *get_config_env()}
    return parse_stack_config({k[len(prefix) :]: _decode(get_config(k)) for k in sorted(keys) if k.startswith(prefix)})


def _decode(value: Any) -> Any:
    """Structured config values arrive as JSON text, plain strings as they are."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _messages(error: ValidationError) -> Iterator[str]:
    for e in error.errors():
        path = _key_path(e["loc"])
        if e["type"] == "problems":
            for relative, message in e["ctx"]["problems"]:
                yield f"{_join(path, relative)}: {message}"
        else:
            yield f"{path or '(top level)'}: {_message(e)}"


def _message(e: Any) -> str:
    kind, ctx = e["type"], e.get("ctx", {})
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        known = _known_keys(e["loc"])
        close = difflib.get_close_matches(str(e["loc"][-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"unknown key; {hint}"
    if kind == "string_pattern_mismatch":
        message = PATTERN_HINTS.get(ctx["pattern"], f"must match {ctx['pattern']}")
    else:
        message = e["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if isinstance(e["input"], str | int | float | bool):
        message += f" (got {e['input']!r})"
    return message


def _key_path(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _join(path: str, relative: str) -> str:
    return f"{path}.{relative}" if path else relative


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed beside an unknown one, found by walking the models along its path."""
    model: type[BaseModel] | None = StackConfig
    in_mapping = False  # the next part is a key of a user mapping (e.g. an accelerator type), not a field
    for part in loc[:-1]:
        if isinstance(part, int) or model is None or in_mapping:
            in_mapping = False
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        model = _model_in(field.annotation) if field else None
        in_mapping = field is not None and get_origin(field.annotation) is dict
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m), None)
