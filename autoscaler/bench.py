"""python -m autoscaler.bench: the controller's cost per pass, printed as numbers.

Runs full reconcile passes (everything but I/O) over many models: Kubernetes reads and Prometheus answers are
prepared in memory, status writes and scale calls are counted, not sent. The clock moves one interval a pass and
the samples with it, so the engine's memory holds what a running controller's does (its windows' worth of plans
and demands), and the passes timed follow enough untimed ones to fill the longest window. Prints CPU time per pass,
queries per pass, and the process's peak RSS.
"""

import argparse
import resource
import time
from typing import Any

from kubernetes import client

from autoscaler.api import spec_from_stack_model
from autoscaler.controller import Controller, Settings
from autoscaler.kube import Kube
from autoscaler.observe import DeploymentState, ServingPod

VARIANTS = (("l40s", "L40S", 5.0), ("a100", "A100-80GB", 20.0), ("h100", "H100", 40.0))
NOW = 1_700_000_000.0
INTERVAL_S = 30.0  # the controller's default pass interval (`--interval`)
WARMUP_PASSES = 24  # 12 minutes: longer than the engine's longest window (a swap's 540 s)


class InMemoryKube(Kube):
    """Kubernetes reads answered from memory; writes counted."""

    def __init__(self, models: int, replicas: int) -> None:
        super().__init__(client.ApiClient())
        self.objects: list[dict[str, Any]] = []
        self.deployments: dict[tuple[str, str], DeploymentState] = {}
        self.pods: list[ServingPod] = []
        for m in range(models):
            name, ns = f"model-{m}", f"ns-{m % 20}"
            variants: list[dict[str, Any]] = []
            for variant, accelerator, cost in VARIANTS:
                vname = f"{name}-{variant}"
                variants.append({"name": vname, "acceleratorType": accelerator, "cost": cost, "maxReplicas": 8})
                self.deployments[(ns, vname)] = DeploymentState(replicas, replicas, replicas)
                self.pods += [ServingPod(ns, f"{vname}-{i}", vname, True) for i in range(replicas)]
            spec = spec_from_stack_model({"modelID": f"org/{name}", "variants": variants}).model_dump(
                by_alias=True, exclude_none=True
            )
            meta = {"name": name, "namespace": ns, "uid": name, "generation": 1}
            self.objects.append({"metadata": meta, "spec": spec})
        self.writes = 0

    def variant_autoscalings(self) -> list[dict[str, Any]]:
        return self.objects

    def serving_deployments(self) -> dict[tuple[str, str], DeploymentState]:
        return self.deployments

    def serving_pods(self, now: float) -> list[ServingPod]:
        return self.pods

    def hpa_targets(self) -> set[tuple[str, str]]:
        return set()

    def config_map(self, namespace: str, name: str) -> dict[str, str]:
        return {}

    def scale(self, namespace: str, deployment: str, replicas: int) -> bool:
        self.writes += 1
        return True

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.writes += 1

    def event(self, involved: Any, kind: str, reason: str, message: str, now: float) -> None:
        self.writes += 1


# Each model's prompts and outputs over the window, cumulative by vLLM's 1-2-5 edges (a conversation mix of 600
# requests), so every pass plans TTFT at load and the TPOT bound of other prompts' chunks too.
PROMPTS = {1000.0: 300.0, 2000.0: 480.0, 5000.0: 590.0, 10000.0: 600.0}
OUTPUTS = {10.0: 20.0, 50.0: 100.0, 100.0: 200.0, 200.0: 380.0, 500.0: 560.0, 1000.0: 595.0, 2000.0: 600.0}
SHAPE = {"requests": 600.0, "prompt": 600.0 * 1155, "generation": 600.0 * 211}


def prometheus_answers(kube: InMemoryKube, now: float = NOW) -> dict[str, list[dict[str, Any]]]:
    """One series per pod for every per-pod query, and per model its prompt histogram and shape, as Prometheus
    would answer them at `now` (the newest samples 5 s old)."""
    answers: dict[str, list[dict[str, Any]]] = {}
    values = {
        "kv": 0.4,
        "queue": 0.0,
        "running": 8.0,
        "throughput": 2.0,
        "itl": 0.05,
        "last_seen": now - 5,
        "prefill": 0.4,
    }
    labels = {"model_name": "x", "num_gpu_blocks": "29000", "block_size": "16"}
    queries = Settings(namespace="wva-system").queries
    for name, q in queries.per_pod.items():
        answers[q.promql] = [
            {"metric": {"namespace": p.namespace, "pod": p.name, **labels}, "value": [now, str(values.get(name, 1.0))]}
            for p in kube.pods
        ]
    models = [(o["metadata"]["namespace"], o["spec"]["modelID"]) for o in kube.objects]
    histograms = {"prompt_tokens": PROMPTS, "generation_tokens": OUTPUTS}
    answers[queries.histograms] = [
        {"metric": {"namespace": ns, "model_name": m, "le": le, "of": of}, "value": [now, str(n)]}
        for ns, m in models
        for of, counts in histograms.items()
        for le, n in [*((str(le), n) for le, n in counts.items()), ("+Inf", max(counts.values()))]
    ]
    answers[queries.shape] = [
        {"metric": {"namespace": ns, "model_name": m, "of": of}, "value": [now, str(v)]}
        for ns, m in models
        for of, v in SHAPE.items()
    ]
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m autoscaler.bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=2, help="ready replicas per variant")
    parser.add_argument("--passes", type=int, default=20)
    args = parser.parse_args()
    kube = InMemoryKube(args.models, args.replicas)
    clock = [NOW]
    answers: dict[str, list[dict[str, Any]]] = {}
    queries: list[str] = []

    def query(promql: str) -> list[dict[str, Any]]:
        queries.append(promql)
        return answers.get(promql, [])

    controller = Controller(kube, query, Settings(namespace="wva-system"), clock=lambda: clock[0])

    def one_pass() -> float:
        """The CPU seconds of a pass one interval after the last; the answers are prepared outside it."""
        clock[0] += INTERVAL_S
        answers.update(prometheus_answers(kube, clock[0]))
        started = time.process_time()
        controller.reconcile()
        return time.process_time() - started

    # Warm-up: imports, specs read once per generation, and the windows (scale-down, trend, prompt history) filled.
    for _ in range(WARMUP_PASSES):
        one_pass()
    queries.clear()
    passes = sorted(one_pass() * 1000 for _ in range(args.passes))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"models                 {args.models} x {len(VARIANTS)} variants, {len(kube.pods)} pods")
    # The median, and the fastest pass: on a shared machine the same pass takes 1.5x as long in a slow phase, and
    # noise only adds time, so the fastest is the nearest to the code's own cost.
    median = passes[len(passes) // 2]
    print(f"cpu per pass           {median:.1f} ms median, {passes[0]:.1f} ms fastest (target < 100 ms, excluding I/O)")
    print(f"queries per pass       {len(queries) / args.passes:.0f} (constant in the number of models)")
    print(f"peak RSS               {rss_mib:.0f} MiB (target < 150 MiB)")


if __name__ == "__main__":
    main()
