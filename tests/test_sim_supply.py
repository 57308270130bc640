"""Finite GPU supply in the simulator: no more replicas of a type than its inventory, the rest shown to the policy
as Kubernetes shows them (Unschedulable, with the scheduler's message) and never billed; a replica beyond the warm
pool waits for a node and is billed from when the node is up."""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from autoscaler.api import GpuSupply
from autoscaler.engine import Observation, VariantStatus
from autoscaler.sim.run import Cluster, workload_for
from autoscaler.sim.setup import Setup, load_setup
from autoscaler.sim.traces import Lengths, Requests

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Asks:
    """Asks for a fixed mix from the start and records what it was shown."""

    warm_start: dict[str, int]
    name: str = "asks"
    interval_s: float = 30.0

    def __post_init__(self) -> None:
        self.seen: list[tuple[float, dict[str, VariantStatus]]] = []

    def decide(self, t: float, status: dict[str, VariantStatus], obs: Observation) -> dict[str, int]:
        self.seen.append((t, dict(status)))
        return dict(self.warm_start)


def quiet_hour() -> Requests:
    return Requests(np.arange(0.0, 3600.0, 10.0), Lengths(np.full(360, 200), np.full(360, 20)))


@pytest.fixture
def setup() -> Setup:
    return load_setup(REPO / "Pulumi.prod.yaml")


def test_no_more_replicas_of_a_type_than_its_inventory_and_the_rest_are_unschedulable(setup: Setup) -> None:
    limited = replace(setup, supply={"H100": GpuSupply(inventory=2)})
    policy = Asks({"llama-70b-l40s": 1, "llama-70b-a100": 0, "llama-70b-h100": 4})
    cluster = Cluster(limited, workload_for(quiet_hour(), limited))
    result = cluster.run(policy, None)
    for _, status in policy.seen:
        h100 = status["llama-70b-h100"]
        assert h100.ready <= 2 and h100.unschedulable == 2
        assert h100.scheduler_message is not None and "Insufficient nvidia.com/gpu" in h100.scheduler_message
    assert result.gpu_hours["H100"] == pytest.approx(2 * 4 * (3600 + 300) / 3600, rel=0.01)  # 2 replicas billed


def test_a_replica_beyond_the_warm_pool_waits_for_a_node_and_is_billed_from_then(setup: Setup) -> None:
    limited = replace(setup, supply={"H100": GpuSupply(inventory=4, warmPool=1, provisionSeconds=600)})
    grow = Asks({"llama-70b-l40s": 1, "llama-70b-a100": 0, "llama-70b-h100": 1})
    record = grow.decide

    def second_from_a_minute(t: float, status: dict[str, VariantStatus], obs: Observation) -> dict[str, int]:
        record(t, status, obs)
        return {**grow.warm_start, "llama-70b-h100": 2 if t >= 60 else 1}

    grow.decide = second_from_a_minute  # type: ignore[method-assign]
    cluster = Cluster(limited, workload_for(quiet_hour(), limited))
    result = cluster.run(grow, None)
    shown = {t: s["llama-70b-h100"] for t, s in grow.seen}
    assert shown[90.0].unschedulable == 1  # waiting for its node
    assert shown[60.0 + 600 + 30].unschedulable == 0 and shown[60.0 + 600 + 30].ready == 1  # node up, cold start
    assert shown[60.0 + 600 + 240 + 30].ready == 2
    second = (3600 + 300 - 60 - 600) / 3600  # billed from its node's start
    assert result.gpu_hours["H100"] == pytest.approx(4 * ((3600 + 300) / 3600 + second), rel=0.01)
