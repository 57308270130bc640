"""The planner finds the cheapest integer mix; brute force over small cases is the reference."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.planner import EPSILON, Option, cheapest_mix

SEED = [Option("l40s", 5, 1.7, 0, 8), Option("a100", 20, 2.5, 0, 4), Option("h100", 40, 7.1, 0, 4)]
AWS = [Option("l40s", 10.49, 1.7, 0, 8), Option("a100", 13.72, 2.5, 0, 4), Option("h100", 27.52, 7.1, 0, 4)]


def brute_force(options: list[Option], demand: float) -> float:
    best = float("inf")
    for counts in itertools.product(*(range(o.low, o.high + 1) for o in options)):
        if sum(n * o.capacity for n, o in zip(counts, options, strict=True)) >= demand - EPSILON:
            best = min(best, sum(n * o.cost for n, o in zip(counts, options, strict=True)))
    return best


def test_seed_prices_fill_with_l40s_first() -> None:
    mix = cheapest_mix(SEED, 5.0)
    assert mix.counts == {"l40s": 3, "a100": 0, "h100": 0} and mix.covered


def test_aws_prices_prefer_h100_per_unit_of_capacity() -> None:
    mix = cheapest_mix(AWS, 12.0)
    assert mix.counts["h100"] >= 1
    assert mix.cost == brute_force(AWS, 12.0)


def test_minimums_are_kept_and_shortfall_is_reported() -> None:
    options = [Option("a", 5, 1, 1, 2), Option("b", 9, 2, 1, 1)]
    assert cheapest_mix(options, 0.0).counts == {"a": 1, "b": 1}
    short = cheapest_mix(options, 100.0)
    assert short.counts == {"a": 2, "b": 1} and not short.covered


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.5, 50), st.floats(0.2, 10), st.integers(0, 2), st.integers(0, 4)), min_size=1, max_size=3
    ),
    st.floats(0, 40),
)
def test_matches_brute_force(raw: list[tuple[float, float, int, int]], demand: float) -> None:
    options = [Option(f"v{i}", c, cap, low, low + extra) for i, (c, cap, low, extra) in enumerate(raw)]
    mix = cheapest_mix(options, demand)
    reference = brute_force(options, demand)
    if reference == float("inf"):
        assert not mix.covered
    else:
        assert mix.covered and abs(mix.cost - reference) < 1e-6
        assert all(o.low <= mix.counts[o.name] <= o.high for o in options)
