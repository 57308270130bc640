"""How fast one replica of a variant runs: the accelerator types' token profiles (`autoscaler/accelerators.py`, the
same the engine plans with), adapted to the model served and to the stack's `simulator.profiles`.

Small models (<= 13B parameters) scale the 70B profiles by how much less weight and KV cache a token moves. Absolute
values are +-30-50% (tests/test_sim.py checks them against the measured Splitwise table); the ratios between
accelerators are what the benchmark relies on.
"""

import re
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from autoscaler.accelerators import ACCELERATORS, FALLBACK_ACCELERATOR, TokenProfile
from autoscaler.api import ReplicaProfile
from autoscaler.priors import with_overrides
from autoscaler.sim.traces import Floats


def prefills_s(profile: TokenProfile, input_tokens: Floats) -> Floats:
    """An idle replica's prefill of each prompt (`accelerators.prefill_seconds`, the engine's own formula)."""
    return np.array([profile.prefill_s(float(n)) for n in input_tokens])


# KV capacities hold for Llama-2-70B and Llama-3.x-70B alike: both have 80 layers of 8 KV heads of 128 dimensions.
LARGE: dict[str, TokenProfile] = {name: a.profile() for name, a in ACCELERATORS.items()}
SMALL_MODEL_MAX_BILLIONS = 13
# An 8B model on the same GPUs: about 1/9 of the weights per token, 1/2.5 of the KV-cache per token.
SMALL_SCALE = {"t0": 0.3, "k_tok": 0.125, "k_kv": 0.4, "kv": 2.5}


def is_small(model_id: str) -> bool:
    sizes = [float(m) for m in re.findall(r"(\d+(?:\.\d+)?)[bB]\b", model_id)]
    return bool(sizes) and max(sizes) <= SMALL_MODEL_MAX_BILLIONS


# The context a model is served with when the stack sets no maxModelLen: vLLM takes the model's own.
CONTEXT_TOKENS = ((r"llama-2", 4096), (r"llama-3\.[1-9]", 131072), (r"llama-3", 8192))


def context_tokens(model_id: str, max_model_len: int | None) -> int | None:
    """Longest prompt plus output vLLM accepts; None for a model this table does not know (nothing is refused)."""
    if max_model_len:
        return max_model_len
    return next((n for pattern, n in CONTEXT_TOKENS if re.search(pattern, model_id.lower())), None)


def profile_for(
    accelerator: str, model_id: str, overrides: Mapping[str, ReplicaProfile], budget: int | None = None
) -> TokenProfile:
    """The profile of an accelerator type for a model; `overrides` come from the stack's `simulator.profiles`,
    `budget` from the variant's `maxNumBatchedTokens` (the same value its vLLM server gets)."""
    base = LARGE.get(accelerator, LARGE[FALLBACK_ACCELERATOR])
    base = replace(base, max_num_batched_tokens=budget or base.max_num_batched_tokens)
    if is_small(model_id):
        s = SMALL_SCALE
        base = replace(
            base,
            t0_s=base.t0_s * s["t0"],
            k_tok_s=base.k_tok_s * s["k_tok"],
            k_kv_s=base.k_kv_s * s["k_kv"],
            kv_capacity=int(base.kv_capacity * s["kv"]),
        )
    return with_overrides(base, overrides.get(accelerator, ReplicaProfile()))
