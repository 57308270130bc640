"""How fast one replica of a variant runs: the iteration-time model of REFERENCE section 9, per accelerator type.

An iteration of continuous batching takes `t0 + k_tok * tokens_in_step + k_kv * kv_tokens_read`. The 70B numbers
are the reference table (4 GPUs a replica); small models (<= 13B parameters) scale them by how much less weight
and KV-cache a token moves. Absolute values are +-30-50% (tests/test_sim_replica.py checks them against the
measured Splitwise table); the ratios between accelerators are what the benchmark relies on.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Profile:
    t0_s: float  # an iteration with nothing in it: reading the weights
    k_tok_s: float  # per token processed in the iteration (prefill or decode)
    k_kv_s: float  # per KV-cache token read by the iteration's decodes
    kv_capacity: int  # KV-cache tokens a replica holds
    max_num_seqs: int = 256

    def iteration_s(self, tokens: float, kv_tokens: float) -> float:
        return self.t0_s + self.k_tok_s * tokens + self.k_kv_s * kv_tokens

    def prefill_s(self, input_tokens: float) -> float:
        return self.t0_s + self.k_tok_s * input_tokens

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


def _ms(t0: float, k_tok: float, k_kv_per_m: float, kv: int) -> Profile:
    return Profile(t0 / 1000, k_tok / 1000, k_kv_per_m / 1000 / 1e6, kv)


LARGE: dict[str, Profile] = {
    "L40S": _ms(28.0, 0.293, 119, 279_000),
    "A100-40GB": _ms(31.7, 0.210, 50, 30_000),
    "A100-80GB": _ms(24.6, 0.210, 50, 476_000),
    "H100": _ms(15.2, 0.081, 31, 472_000),
    "H200": _ms(10.6, 0.070, 21, 1_100_000),
}
SMALL_MODEL_MAX_BILLIONS = 13
# An 8B model on the same GPUs: about 1/9 of the weights per token, 1/2.5 of the KV-cache per token.
SMALL_SCALE = {"t0": 0.3, "k_tok": 0.125, "k_kv": 0.4, "kv": 2.5}


def is_small(model_id: str) -> bool:
    sizes = [float(m) for m in re.findall(r"(\d+(?:\.\d+)?)[bB]\b", model_id)]
    return bool(sizes) and max(sizes) <= SMALL_MODEL_MAX_BILLIONS


def profile_for(accelerator: str, model_id: str, overrides: Mapping[str, Mapping[str, Any]]) -> Profile:
    """The profile of an accelerator type for a model; `overrides` come from the stack's `simulator.profiles`."""
    base = LARGE.get(accelerator, LARGE["A100-80GB"])
    if is_small(model_id):
        s = SMALL_SCALE
        base = Profile(
            base.t0_s * s["t0"], base.k_tok_s * s["k_tok"], base.k_kv_s * s["k_kv"], int(base.kv_capacity * s["kv"])
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
