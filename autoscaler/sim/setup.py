"""The simulated platform from a stack file: the first model's variants, their engine specs and replica profiles,
the thresholds and the SLO, exactly as the Pulumi program hands them to the autoscaler."""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from autoscaler.accelerators import TokenProfile
from autoscaler.api import GpuSupply, SimulatorSettings, Thresholds, VariantAutoscalingSpec, spec_from_stack_model
from autoscaler.engine import VariantSpec
from autoscaler.priors import variant_spec
from autoscaler.sim.profiles import context_tokens, profile_for
from autoscaler.sim.serving import Routing, Slo

Prices = Literal["seed", "aws-2025"]
# On-demand USD per replica-hour of 4 GPUs (REFERENCE section 9); scaled by the GPU count of other shapes.
AWS_2025 = {"L40S": 10.49, "A100-80GB": 13.72, "H100": 27.52}
DEFAULT_COLD_START_S = 240.0


@dataclass(frozen=True)
class SimVariant:
    spec: VariantSpec
    accelerator: str
    gpus: int
    profile: TokenProfile


@dataclass(frozen=True)
class Setup:
    model_id: str
    spec: VariantAutoscalingSpec  # the model's VariantAutoscaling, as the controller reads it
    variants: tuple[SimVariant, ...]
    thresholds: Thresholds
    slo: Slo
    context_tokens: int | None = None  # longest prompt plus output the model's servers accept
    cold_start_s: float = DEFAULT_COLD_START_S
    routing: Routing = "least-work"
    seed: int = 0
    supply: Mapping[str, GpuSupply] = field(default_factory=dict)  # per accelerator type; absent: unlimited
    picker_queue: bool = False  # an endpoint picker fronts the model: its queue is seen (endpoint.inferencePool)


def stack_file(stack: str, root: Path) -> Path:
    """`dev`/`prod` name `Pulumi.<stack>.yaml` at the repo root; anything else is a path."""
    named = root / f"Pulumi.{stack}.yaml"
    return named if named.exists() else Path(stack)


def load_setup(path: Path, prices: Prices = "seed", cold_start_s: float = DEFAULT_COLD_START_S) -> Setup:
    config: Mapping[str, Any] = (yaml.safe_load(path.read_text()) or {}).get("config", {})
    models = config.get("llm-platform:models") or []
    if not models:
        raise ValueError(f"{path}: no llm-platform:models")
    model = models[0]
    spec = spec_from_stack_model(model)
    nested = (config.get("llm-platform:autoscaler") or {}).get("thresholds")
    thresholds = Thresholds.model_validate(config.get("llm-platform:autoscaler.thresholds") or nested or {})
    settings = SimulatorSettings.model_validate(config.get("llm-platform:simulator") or {})
    variants = []
    for v in spec.variants:
        engine = variant_spec(v)
        if prices == "aws-2025" and v.accelerator_type in AWS_2025:
            engine = replace(engine, cost=AWS_2025[v.accelerator_type] * v.gpus_per_replica / 4)
        profile = profile_for(v.accelerator_type, spec.model_id, settings.profiles, v.max_num_batched_tokens)
        variants.append(SimVariant(engine, v.accelerator_type, v.gpus_per_replica, profile))
    slo = Slo(spec.slo.ttft_seconds, spec.slo.tpot_seconds)
    context = context_tokens(spec.model_id, model.get("maxModelLen"))
    picker = bool((model.get("endpoint") or {}).get("inferencePool"))
    return Setup(
        spec.model_id,
        spec,
        tuple(variants),
        thresholds,
        slo,
        context,
        cold_start_s,
        supply=settings.supply,
        picker_queue=picker,
    )


# The fields of a replica's profile a sensitivity run can scale (`--profile-error`), by the name it is given.
PROFILE_FIELDS = {"t0": "t0_s", "k_tok": "k_tok_s", "k_kv": "k_kv_s", "kv": "kv_capacity"}


def with_profile_error(setup: Setup, factors: Mapping[str, float]) -> Setup:
    """The setup with its simulated replicas' true profiles scaled field by field, while the engine keeps planning on
    the priors: the benchmark then measures how the online corrections cope with priors that are wrong. `factors`
    are keyed by the names of PROFILE_FIELDS."""

    def scaled(p: TokenProfile) -> TokenProfile:
        changes = {PROFILE_FIELDS[k]: getattr(p, PROFILE_FIELDS[k]) * f for k, f in factors.items()}
        changes["kv_capacity"] = int(changes.get("kv_capacity", p.kv_capacity))
        return replace(p, **changes)

    return replace(setup, variants=tuple(replace(v, profile=scaled(v.profile)) for v in setup.variants))
