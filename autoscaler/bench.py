"""python -m autoscaler.bench: the controller's cost per pass, printed as numbers.

Runs full reconcile passes (everything but I/O) over many models: Kubernetes reads and Prometheus answers are
prepared in memory, status writes and scale calls are counted, not sent. Prints CPU time per pass, queries per
pass, and the process's peak RSS.
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


# Each model's prompts over the window, cumulative by vLLM's 1-2-5 edges (a conversation mix of 600 requests), so
# every pass plans TTFT at load too.
PROMPTS = {1000.0: 300.0, 2000.0: 480.0, 5000.0: 590.0, 10000.0: 600.0}
SHAPE = {"requests": 600.0, "prompt": 600.0 * 1155, "generation": 600.0 * 211}


def prometheus_answers(kube: InMemoryKube) -> dict[str, list[dict[str, Any]]]:
    """One series per pod for every per-pod query, and per model its prompt histogram and shape, as Prometheus
    would answer them."""
    answers: dict[str, list[dict[str, Any]]] = {}
    values = {
        "kv": 0.4,
        "queue": 0.0,
        "running": 8.0,
        "throughput": 2.0,
        "itl": 0.05,
        "last_seen": NOW - 5,
        "prefill": 0.4,
    }
    labels = {"model_name": "x", "num_gpu_blocks": "29000", "block_size": "16"}
    queries = Settings(namespace="wva-system").queries
    for name, q in queries.per_pod.items():
        answers[q.promql] = [
            {"metric": {"namespace": p.namespace, "pod": p.name, **labels}, "value": [NOW, str(values.get(name, 1.0))]}
            for p in kube.pods
        ]
    models = [(o["metadata"]["namespace"], o["spec"]["modelID"]) for o in kube.objects]
    edges = [*((str(le), n) for le, n in PROMPTS.items()), ("+Inf", max(PROMPTS.values()))]
    answers[queries.histograms] = [
        {"metric": {"namespace": ns, "model_name": m, "le": le, "of": "prompt_tokens"}, "value": [NOW, str(n)]}
        for ns, m in models
        for le, n in edges
    ]
    answers[queries.shape] = [
        {"metric": {"namespace": ns, "model_name": m, "of": of}, "value": [NOW, str(v)]}
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
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()
    kube = InMemoryKube(args.models, args.replicas)
    answers = prometheus_answers(kube)
    queries: list[str] = []

    def query(promql: str) -> list[dict[str, Any]]:
        queries.append(promql)
        return answers.get(promql, [])

    controller = Controller(kube, query, Settings(namespace="wva-system"), clock=lambda: NOW)
    controller.reconcile()  # warm-up: imports, first-cycle memory
    queries.clear()
    started = time.process_time()
    for _ in range(args.passes):
        controller.reconcile()
    cpu_ms = (time.process_time() - started) / args.passes * 1000
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"models                 {args.models} x {len(VARIANTS)} variants, {len(kube.pods)} pods")
    print(f"cpu per pass           {cpu_ms:.1f} ms (target < 100 ms, excluding I/O)")
    print(f"queries per pass       {len(queries) / args.passes:.0f} (constant in the number of models)")
    print(f"peak RSS               {rss_mib:.0f} MiB (target < 150 MiB)")


if __name__ == "__main__":
    main()
