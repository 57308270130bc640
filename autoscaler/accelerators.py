"""GPU accelerator types the platform knows, how GPU Feature Discovery names them, and capacity priors.

Node affinity matches a type to a list of `nvidia.com/gpu.product` values, never one string: the same GPU has
several board names (SXM, PCIe, NVL). The priors describe a 70B model on 4 GPUs of the type (the seed's shape);
the autoscaler starts from them and learns the real capacity online.
"""

import math
from dataclasses import dataclass

PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class Accelerator:
    name: str
    products: tuple[str, ...]
    memory_gib: int
    decode_step_ms: float  # prior: one decode iteration at small batch (ITL floor), the t0 of the iteration model
    kv_cache_tokens: int  # prior: KV-cache capacity of one replica
    capacity_rps: float  # prior: requests/s one replica serves at ITL <= 100 ms on a conversation mix
    # The iteration-time model of a replica (REFERENCE section 9): an iteration takes t0 + k_tok * tokens +
    # k_kv * kv_tokens. The simulator's replicas run on it and the engine predicts prefill times from it.
    k_tok_ms: float = 0.2  # per token an iteration processes
    k_kv_ms_per_m: float = 50.0  # per million KV-cache tokens its decodes read

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


ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        Accelerator("L40S", ("NVIDIA-L40S",), 48, 28.0, 279_000, 1.7, 0.293, 119),
        Accelerator("A100-40GB", ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"), 40, 31.7, 30_000, 0.5, 0.210, 50),
        Accelerator("A100-80GB", ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"), 80, 24.6, 476_000, 2.5, 0.210, 50),
        Accelerator(
            "H100", ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"), 80, 15.2, 472_000, 7.1, 0.081, 31
        ),
        Accelerator("H200", ("NVIDIA-H200", "NVIDIA-H200-NVL"), 141, 10.6, 1_100_000, 10.0, 0.070, 21),
    )
}


# Without a known accelerator type (a variant with its own nodeSelector): the smallest of vLLM's defaults.
FALLBACK_MAX_NUM_BATCHED_TOKENS = 2048
FALLBACK_MAX_NUM_SEQS = 256


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
