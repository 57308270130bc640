"""Zero that holds, in the simulator: a model whose variants all allow zero replicas, fronted by an endpoint picker
whose queue wakes it, stays at zero between two bursts (no GPU pod created and deleted every pass) and comes back
for the second burst."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from autoscaler.sim.run import simulate
from autoscaler.sim.setup import load_setup
from autoscaler.sim.traces import Envelope, materialize, synthetic_lengths

BENCH_STACK = Path(__file__).resolve().parents[1] / "autoscaler" / "sim" / "bench-stack.yaml"


@pytest.mark.parametrize("policy", ["default", "wva-v1"])
def test_a_model_at_zero_stays_there_between_bursts_and_wakes_on_the_pickers_queue(tmp_path: Path, policy: str) -> None:
    raw = yaml.safe_load(BENCH_STACK.read_text())
    model = raw["config"]["llm-platform:models"][0]
    for variant in model["variants"]:
        variant["minReplicas"] = 0
    model["endpoint"] = {"inferencePool": True}
    stack = tmp_path / "Pulumi.zero.yaml"
    stack.write_text(yaml.safe_dump(raw))
    setup = load_setup(stack)
    per_minute = np.zeros(120)
    per_minute[10:20] = per_minute[100:110] = 240.0  # two 10-minute bursts of 4 req/s, 90 minutes apart
    trace = materialize(Envelope(np.arange(120.0), per_minute, synthetic_lengths(5_000, 1)), seed=1)
    result = simulate(policy, setup, trace)
    minutes = [int(t // 60) for t in result.timeline.t]
    between = [sum(r[k] for r in result.timeline.replicas.values()) for k, m in enumerate(minutes) if 50 <= m < 98]
    assert between and max(between) == 0  # idle for the retention window, then at zero until requests wait
    woken = [sum(r[k] for r in result.timeline.replicas.values()) for k, m in enumerate(minutes) if 104 <= m < 110]
    assert min(woken) >= 1  # the second burst wakes it
    assert result.scale_events < 60  # not a pod created and deleted every 30 s (hundreds of events)
    if policy == "default":
        assert result.slo_attainment > 0.3  # what a cold start lets a reactive policy serve of two such bursts
