"""GPU accelerator types the platform knows, how GPU Feature Discovery names them, and their token profiles.

Node affinity matches a type to a list of `nvidia.com/gpu.product` values, never one string: the same GPU has
several board names (SXM, PCIe, NVL). The profiles describe a 70B model on 4 GPUs of the type (the seed's shape) in
the iteration-time model of REFERENCE section 9; the engine plans with them as priors (and corrects them online),
and the simulator's replicas run on them: one source for both.
"""

import math
from dataclasses import dataclass

PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class TokenProfile:
    """One replica in tokens: an iteration of continuous batching takes `t0 + k_tok * tokens + k_kv * kv_tokens`
    and schedules at most `max_num_batched_tokens` tokens (chunked prefill) for at most `max_num_seqs` requests."""

    t0_s: float  # an iteration with nothing in it: reading the weights (the inter-token latency floor)
    k_tok_s: float  # per token processed in the iteration (prefill or decode)
    k_kv_s: float  # per KV-cache token read by the iteration's decodes
    kv_capacity: int  # KV-cache tokens a replica holds
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048

    def iteration_s(self, tokens: float, kv_tokens: float) -> float:
        return self.t0_s + self.k_tok_s * tokens + self.k_kv_s * kv_tokens

    def prefill_s(self, prompt_tokens: float) -> float:
        return prefill_seconds(prompt_tokens, self.t0_s, self.k_tok_s, self.max_num_batched_tokens)

    def work_s(self, input_tokens: float, output_tokens: float, cached_share: float = 0.0) -> float:
        """Busy seconds one request adds beyond the fixed cost of iterations: the prompt tokens not found in the
        prefix cache, its output tokens, and its decodes' KV reads (over a context of prompt plus half the output)."""
        context = input_tokens + output_tokens / 2
        computed = input_tokens * (1 - cached_share) + output_tokens
        return self.k_tok_s * computed + self.k_kv_s * output_tokens * context

    def rate_at_itl(self, itl_s: float, input_tokens: float, output_tokens: float, cached_share: float = 0.0) -> float:
        """Requests/s a replica serves with this inter-token latency (ITL = t0 / (1 - rho), rho = rate * work),
        within its KV cache and its running-request cap (a decode batch of rate * output * ITL requests)."""
        rho = max(0.0, 1 - self.t0_s / itl_s)
        rate = rho / self.work_s(input_tokens, output_tokens, cached_share)
        context = input_tokens + output_tokens / 2
        batch_limit = min(self.max_num_seqs, self.kv_capacity / context)
        return min(rate, batch_limit / (output_tokens * itl_s))


@dataclass(frozen=True)
class Accelerator:
    name: str
    products: tuple[str, ...]
    memory_gib: int
    decode_step_ms: float  # t0: one iteration at small batch (the ITL floor)
    kv_cache_tokens: int  # KV-cache capacity of one replica
    k_tok_ms: float  # per token an iteration processes
    k_kv_ms_per_m: float  # per million KV-cache tokens its decodes read

    @property
    def max_num_batched_tokens(self) -> int:
        """vLLM's default per-step token budget for its OpenAI server (`EngineArgs.get_batch_defaults`, balanced
        mode): 16384 from 160 GiB of GPU memory, 8192 from 70 GiB except A100, else 2048."""
        if self.memory_gib >= 160:
            return 16384
        return 8192 if self.memory_gib >= 70 and not self.name.startswith("A100") else 2048

    @property
    def max_num_seqs(self) -> int:
        """vLLM's default cap on running requests, chosen with the token budget: 1024 with the larger budgets."""
        return 256 if self.max_num_batched_tokens == 2048 else 1024

    def profile(self) -> TokenProfile:
        return TokenProfile(
            self.decode_step_ms / 1000,
            self.k_tok_ms / 1000,
            self.k_kv_ms_per_m / 1e9,
            self.kv_cache_tokens,
            self.max_num_seqs,
            self.max_num_batched_tokens,
        )


ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        Accelerator("L40S", ("NVIDIA-L40S",), 48, 28.0, 279_000, 0.293, 119),
        Accelerator("A100-40GB", ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"), 40, 31.7, 30_000, 0.210, 50),
        Accelerator("A100-80GB", ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"), 80, 24.6, 476_000, 0.210, 50),
        Accelerator(
            "H100", ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"), 80, 15.2, 472_000, 0.081, 31
        ),
        Accelerator("H200", ("NVIDIA-H200", "NVIDIA-H200-NVL"), 141, 10.6, 1_100_000, 0.070, 21),
    )
}


# Without a known accelerator type (a variant with its own nodeSelector): an A100-80GB's profile, and the smallest
# of vLLM's batch defaults.
FALLBACK_ACCELERATOR = "A100-80GB"
FALLBACK_MAX_NUM_BATCHED_TOKENS = 2048
FALLBACK_MAX_NUM_SEQS = 256

# The request shape the profiles were checked on (REFERENCE section 9's capacity column, the Azure conversation
# mix): mean prompt and output tokens. The engine plans on it until a model's own shape is measured.
PRIOR_PROMPT_TOKENS = 1155.0
PRIOR_OUTPUT_TOKENS = 211.0


def batch_defaults(accelerator_type: str) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) vLLM's OpenAI server picks on this accelerator type."""
    known = ACCELERATORS.get(accelerator_type)
    if known is None:
        return FALLBACK_MAX_NUM_BATCHED_TOKENS, FALLBACK_MAX_NUM_SEQS
    return known.max_num_batched_tokens, known.max_num_seqs


def prefill_seconds(prompt_tokens: float, t0_s: float, k_tok_s: float, budget: int) -> float:
    """An idle replica's prefill of a prompt: ceil(n / budget) iterations (vLLM's chunked prefill), each paying the
    fixed cost t0, and every token once."""
    return max(1, math.ceil(prompt_tokens / budget)) * t0_s + k_tok_s * prompt_tokens
