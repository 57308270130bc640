"""How fast one replica of a variant runs: the iteration-time model of REFERENCE section 9, per accelerator type.

An iteration of continuous batching takes `t0 + k_tok * tokens_in_step + k_kv * kv_tokens_read`, and schedules at
most `max_num_batched_tokens` tokens (vLLM V1's chunked prefill: decodes first, prompt chunks in what is left) for at
most `max_num_seqs` running requests; both default to vLLM's own for the GPU (`autoscaler/accelerators.py`). The 70B
numbers
are the reference table (4 GPUs a replica); small models (<= 13B parameters) scale them by how much less weight
and KV-cache a token moves. Absolute values are +-30-50% (tests/test_sim_replica.py checks them against the
measured Splitwise table); the ratios between accelerators are what the benchmark relies on.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autoscaler.accelerators import ACCELERATORS, Accelerator, prefill_seconds
from autoscaler.sim.traces import Floats


@dataclass(frozen=True)
class Profile:
    t0_s: float  # an iteration with nothing in it: reading the weights
    k_tok_s: float  # per token processed in the iteration (prefill or decode)
    k_kv_s: float  # per KV-cache token read by the iteration's decodes
    kv_capacity: int  # KV-cache tokens a replica holds
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048  # tokens one iteration schedules (decodes plus prompt chunks)

    def iteration_s(self, tokens: float, kv_tokens: float) -> float:
        return self.t0_s + self.k_tok_s * tokens + self.k_kv_s * kv_tokens

    def prefill_s(self, input_tokens: Floats) -> Floats:
        """An idle replica's prefill of each prompt (`accelerators.prefill_seconds`, the engine's own formula)."""
        b = self.max_num_batched_tokens
        return np.array([prefill_seconds(float(n), self.t0_s, self.k_tok_s, b) for n in input_tokens])

    def work_s(self, input_tokens: float, output_tokens: float) -> float:
        """Busy seconds one request adds beyond the fixed cost of iterations: its tokens and its KV reads."""
        context = input_tokens + output_tokens / 2
        return self.k_tok_s * (input_tokens + output_tokens) + self.k_kv_s * output_tokens * context

    def rate_at_itl(self, itl_s: float, input_tokens: float, output_tokens: float) -> float:
        """Requests/s a replica serves with this inter-token latency (ITL = t0 / (1 - rho)), within KV and batch."""
        rho = max(0.0, 1 - self.t0_s / itl_s)
        rate = rho / self.work_s(input_tokens, output_tokens)
        context = input_tokens + output_tokens / 2
        batch_limit = min(self.max_num_seqs, self.kv_capacity / context)
        return min(rate, batch_limit / (output_tokens * itl_s))


def _profile(a: Accelerator) -> Profile:
    """A 70B replica of 4 GPUs of this type, from the priors the engine plans with (one source)."""
    return Profile(
        a.decode_step_ms / 1000,
        a.k_tok_ms / 1000,
        a.k_kv_ms_per_m / 1000 / 1e6,
        a.kv_cache_tokens,
        a.max_num_seqs,
        a.max_num_batched_tokens,
    )


# KV capacities hold for Llama-2-70B and Llama-3.x-70B alike: both have 80 layers of 8 KV heads of 128 dimensions.
LARGE: dict[str, Profile] = {name: _profile(a) for name, a in ACCELERATORS.items()}
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
    accelerator: str, model_id: str, overrides: Mapping[str, Mapping[str, Any]], budget: int | None = None
) -> Profile:
    """The profile of an accelerator type for a model; `overrides` come from the stack's `simulator.profiles`,
    `budget` from the variant's `maxNumBatchedTokens` (the same value its vLLM server gets)."""
    base = LARGE.get(accelerator, LARGE["A100-80GB"])
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
    o = overrides.get(accelerator, {})
    return replace(
        base,
        t0_s=float(o.get("t0Ms", base.t0_s * 1000)) / 1000,
        k_tok_s=float(o.get("kTokMs", base.k_tok_s * 1000)) / 1000,
        k_kv_s=float(o.get("kKvMsPerMTokens", base.k_kv_s * 1e9)) / 1e9,
        kv_capacity=int(o.get("kvCapacityTokens", base.kv_capacity)),
        max_num_seqs=int(o.get("maxNumSeqs", base.max_num_seqs)),
    )
