"""Reading a latency histogram's share within an objective: exact at an edge, estimated between edges."""

import math

import pytest

from autoscaler.buckets import share_within, slo_buckets
from autoscaler.engine import Tuning, ttft_reading

# vLLM's default TTFT edges around 2 s (1.0, 2.5), and the same with the platform's edge at the objective.
DEFAULT = {1.0: 60.0, 2.5: 90.0, 5.0: 100.0, math.inf: 100.0}
WITH_EDGE = {1.0: 60.0, 2.0: 84.0, 2.5: 90.0, math.inf: 100.0}

SHARE_CASES = [  # (cumulative histogram, objective, share, exact)
    (WITH_EDGE, 2.0, 0.84, True),
    (DEFAULT, 2.0, 0.80, False),  # linear between 1.0 (60) and 2.5 (90)
    (DEFAULT, 0.5, 0.30, False),  # below the first edge: from zero
    (DEFAULT, 10.0, 1.0, False),  # beyond the last finite edge: what it holds
    ({1.0: 0.0, math.inf: 0.0}, 2.0, None, None),  # nothing observed
]


@pytest.mark.parametrize(("cumulative", "objective", "share", "exact"), SHARE_CASES)
def test_share_within_an_objective(
    cumulative: dict[float, float], objective: float, share: float | None, exact: bool | None
) -> None:
    read = share_within(cumulative, objective)
    if share is None:
        assert read is None
    else:
        assert read is not None and read[0] == pytest.approx(share) and read[1] is exact


def test_the_platforms_edges_put_one_at_each_objective() -> None:
    buckets = slo_buckets(2.0, 0.1)
    hist = {le: float(i) for i, le in enumerate(buckets["time_to_first_token"])} | {math.inf: 100.0}
    assert share_within(hist, 2.0) == (buckets["time_to_first_token"].index(2.0) / 100, True)


def test_the_ttft_reading_names_the_estimate_and_waits_for_enough_requests() -> None:
    tuning = Tuning()
    assert ttft_reading({2.0: 10.0, math.inf: 10.0}, {}, tuning) is None  # 10 requests say nothing of a 1% tail
    many = {le: n * 10 for le, n in DEFAULT.items()}
    reading = ttft_reading(many, {"l40s": 0.95, "h100": 0.999}, tuning)
    assert reading is not None and reading.goal == pytest.approx(0.989)  # what idle prefill allows, at most 99%
    assert (
        reading.describe(2.0) == "TTFT within 2s: 80.0% of 1000 requests (estimated between bucket edges; goal 98.9%)"
    )
