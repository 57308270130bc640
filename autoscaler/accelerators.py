"""GPU accelerator types the platform knows, and how GPU Feature Discovery names them on nodes.

Node affinity matches a type to a list of `nvidia.com/gpu.product` values, never one string: the same GPU has
several board names (SXM, PCIe, NVL).
"""

from dataclasses import dataclass

PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class Accelerator:
    name: str
    products: tuple[str, ...]
    memory_gib: int


ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        Accelerator("L40S", ("NVIDIA-L40S",), 48),
        Accelerator("A100-40GB", ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"), 40),
        Accelerator("A100-80GB", ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"), 80),
        Accelerator("H100", ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"), 80),
        Accelerator("H200", ("NVIDIA-H200", "NVIDIA-H200-NVL"), 141),
    )
}
