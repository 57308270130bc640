"""Results for people: a table, and plots (load and replicas per variant over time; cost against SLO
attainment per policy, over the oracle's cost curve)."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from autoscaler.sim.bound import Bound
from autoscaler.sim.run import Result


def table(results: Sequence[Result]) -> str:
    head = (
        f"{'policy':<12} {'requests':>10} {'SLO':>8} {'TTFT p99':>9} {'TPOT p99':>9} {'cost $':>10} {'events':>7}"
        "  GPU-hours"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        hours = ", ".join(f"{k} {v:.0f}" for k, v in r.gpu_hours.items() if v > 0)
        rows.append(
            f"{r.policy:<12} {r.requests:>10,} {r.slo_attainment * 100:>7.2f}% {r.ttft_p99_s:>8.2f}s "
            f"{r.tpot_p99_s * 1000:>7.0f}ms {r.cost_usd:>10,.0f} {r.scale_events:>7}  {hours}"
        )
    return "\n".join(rows)


def plots(results: Sequence[Result], folder: Path, title: str = "", curve: Bound | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for r in results:
        fig, load = plt.subplots(figsize=(10, 4))
        hours = [t / 3600 for t in r.timeline.t]
        load.plot(hours, r.timeline.load_rps, color="black", linewidth=0.8, label="load (req/s)")
        load.set_xlabel("hours")
        load.set_ylabel("requests/s")
        replicas = load.twinx()
        replicas.stackplot(
            hours, *r.timeline.replicas.values(), labels=list(r.timeline.replicas), alpha=0.4, step="post"
        )
        replicas.set_ylabel("replicas")
        replicas.legend(loc="upper right", fontsize=8)
        load.set_title(f"{title} {r.policy}: load and replicas per variant".strip())
        path = folder / f"timeline-{r.policy}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    if curve is not None:
        ax.plot([a * 100 for a in curve.attainment], curve.cost_usd, color="grey", marker=".", label="oracle curve")
        ax.legend(loc="upper left", fontsize=8)
    for r in results:
        ax.scatter(r.slo_attainment * 100, r.cost_usd)
        ax.annotate(r.policy, (r.slo_attainment * 100, r.cost_usd), fontsize=8)
    ax.set_xlabel("SLO attainment (%)")
    ax.set_ylabel("cost (USD)")
    ax.set_title(f"{title} cost against SLO attainment".strip())
    path = folder / "cost-vs-slo.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return [*written, path]
