"""The seed's test vectors (REFERENCE section 7), table-driven, with the default thresholds 0.80/5/0.10/3."""

import pytest

from autoscaler.api import Thresholds
from autoscaler.saturation import Load, analyze


@pytest.mark.parametrize(
    ("kv", "queue", "up", "down_safe"),
    [
        ([0.75, 0.76], [2, 2], True, False),  # spare KV 0.045 < 0.10
        ([0.50, 0.50], [3, 3], True, False),  # spare queue 2 < 3
        ([0.50, 0.50], [1, 1], False, False),  # enough spare; one fewer would leave spare queue 3 but KV 0.2-... unsafe
        ([0.20, 0.30, 0.25], [1, 1, 1], False, True),
        ([0.70, 0.75], [2, 2], True, False),
        ([0.30], [1], False, False),  # one non-saturated replica: never safe to remove
        ([0.90, 0.85], [0, 0], True, False),  # all saturated: averages are 0
    ],
)
def test_seed_vectors(kv: list[float], queue: list[float], up: bool, down_safe: bool) -> None:
    result = analyze([Load(k, q) for k, q in zip(kv, queue, strict=True)], Thresholds())
    assert (result.scale_up, result.scale_down_safe) == (up, down_safe)


def test_no_change_vector_is_neither_up_nor_safe_down() -> None:
    result = analyze([Load(0.5, 1), Load(0.5, 1)], Thresholds())
    # spare KV 0.3, spare queue 4: no scale-up; after removal KV 0.8-0.5*2 = -0.2 < 0.1: unsafe
    assert result.avg_spare_kv == pytest.approx(0.3) and result.avg_spare_queue == pytest.approx(4)
    assert not result.scale_up and not result.scale_down_safe


def test_saturated_replicas_are_left_out_of_the_averages() -> None:
    result = analyze([Load(0.95, 0), Load(0.4, 1), Load(0.2, 1)], Thresholds())
    assert result.non_saturated == 2
    assert result.avg_spare_kv == pytest.approx(0.5)
