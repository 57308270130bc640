"""python -m autoscaler.sim.bench (make bench): every policy on every workload shape, with the seed's and AWS 2025
prices, against the oracle's cost curve (the lower bound at equal attainment); prints the numbers and writes a
markdown report with plots. Reads the development traces from ../shared/traces (or --traces).

Shapes, each named by what it stresses (synthetic lengths are log-normal with sigma 0.8 and the stated means):
- conversation: the Azure week (aggregate) and hour (per request), Azure conversation lengths;
- prompt-heavy: a coding assistant (2,048-token prompts, 30-token outputs on average) on the Azure hour's own
  arrivals, so with real per-second burstiness;
- long-context with shared prefixes: the Mooncake synthetic trace as it is (block hashes, prompts up to ~60k);
- summarization: 6,000-token prompts, 300-token outputs, under the week's envelope at 0.05 scale (aggregate);
- bursts: 8 req/s with one x5 burst for 5 minutes (conversation lengths);
- mixed sizes: ShareGPT with 5% Mooncake prompts on a 6-hour diurnal load.
"""

import argparse
import math
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from autoscaler.api import GpuSupply
from autoscaler.sim import bound, oracle, report
from autoscaler.sim.run import POLICIES, Result, simulate, workload_for
from autoscaler.sim.serving import Routing
from autoscaler.sim.setup import PROFILE_FIELDS, Prices, Setup, load_setup, with_profile_error
from autoscaler.sim.traces import (
    Envelope,
    Lengths,
    Requests,
    Trace,
    load,
    load_lengths,
    materialize,
    mixed,
    relengthen,
    scaled,
    synthetic,
    synthetic_lengths,
    with_burst,
)

ROOT = Path(__file__).resolve().parents[2]
STACK = Path(__file__).with_name("bench-stack.yaml")
AZURE = "AzureLLMInferenceTrace_conv.csv"
WEEK = "azure2024_conv_week_rate_envelope_digitized.csv"
MOONCAKE = "mooncake_synthetic_trace.jsonl"
SHAREGPT = "sharegpt_8k_filtered_stats_llama2_tokenizer.csv"
CODING = {"mean_input": 2048.0, "mean_output": 30.0}
SUMMARIZATION = {"mean_input": 6000.0, "mean_output": 300.0}
LONG_PROMPTS = {"mean_input": 12000.0, "mean_output": 300.0}  # the engine issue's long-context conversation
# Length populations a shape can be replayed with instead of its own (`--lengths`): a probe of shapes the engine
# was not developed on, on the same arrivals.
LENGTHS: dict[str, Callable[[Path, int], Lengths]] = {
    "conversation": lambda traces, seed: load_lengths(traces / AZURE),
    "sharegpt": lambda traces, seed: load_lengths(traces / SHAREGPT),
    "coding": lambda traces, seed: synthetic_lengths(50_000, seed, **CODING),
    "summarization": lambda traces, seed: synthetic_lengths(50_000, seed, **SUMMARIZATION),
    "long-prompts": lambda traces, seed: synthetic_lengths(50_000, seed, **LONG_PROMPTS),
}


@dataclass(frozen=True)
class Shape:
    name: str
    make: Callable[[], Trace]
    quick: bool  # in `make bench-quick`: per-request shapes of an hour or less
    prices: tuple[Prices, ...] = ("seed", "aws-2025")
    stockout: str | None = None  # an accelerator type given half the replicas its peak needs


def shapes(traces: Path, seed: int) -> list[Shape]:
    conv = load_lengths(traces / AZURE)
    hour = traces / AZURE
    return [
        Shape("conversation week (27M requests, aggregate)", lambda: load(traces / WEEK, hour, seed), False),
        Shape(
            "stockout: the conversation week with half the H100s its peak needs (aggregate)",
            lambda: load(traces / WEEK, hour, seed),
            False,
            prices=("aws-2025",),
            stockout="H100",
        ),
        Shape("conversation hour (Azure, per request)", lambda: load(hour, None, seed), True),
        Shape(
            "prompt-heavy: coding lengths on the Azure hour's arrivals (per request)",
            lambda: relengthen(requests(load(hour, None, seed)), synthetic_lengths(50_000, seed, **CODING), seed),
            True,
        ),
        Shape(
            "long-context with shared prefixes (Mooncake, per request)",
            lambda: load(traces / MOONCAKE, None, seed),
            True,
        ),
        Shape(
            "summarization lengths on the week at 0.05 scale (aggregate)",
            lambda: replace(
                scaled(load(traces / WEEK, hour, seed), 0.05, seed),
                lengths=synthetic_lengths(50_000, seed, **SUMMARIZATION),
            ),
            False,
        ),
        Shape(
            "bursts (8 req/s, x5 for 5 min, per request)",
            lambda: materialize(with_burst(8.0, 120, 60, 5.0, 5, conv), seed),
            True,
        ),
        Shape(
            "mixed sizes: ShareGPT + 5% Mooncake, diurnal 6 h (per request)",
            lambda: materialize(
                synthetic(
                    6,
                    3.0,
                    mixed(
                        load_lengths(traces / SHAREGPT),
                        load_lengths(traces / MOONCAKE),
                        0.05,
                        50_000,
                        seed,
                    ),
                    seed,
                    bursts=0,
                ),
                seed,
            ),
            False,
        ),
    ]


def requests(trace: Trace) -> Requests:
    if not isinstance(trace, Requests):
        raise ValueError("expected a request trace")
    return trace


def varied(trace: Trace, scale: float, lengths: Lengths | None, seed: int) -> Trace:
    """The shape's traffic at `scale` times its load, with other request lengths where given (the same arrivals, so
    the same burstiness; a request trace's prefix blocks go with its own lengths)."""
    if lengths is not None:
        trace = replace(trace, lengths=lengths) if isinstance(trace, Envelope) else relengthen(trace, lengths, seed)
    return scaled(trace, scale, seed) if scale != 1.0 else trace


def half_of_peak(setup: Setup, trace: Trace, accelerator: str) -> dict[str, GpuSupply]:
    """An inventory of half the replicas of this type that the oracle would run at the trace's peak."""
    workload = workload_for(trace, setup)
    options = {o.name: o for o in oracle.options(setup, workload)}
    variant = next(v for v in setup.variants if v.accelerator == accelerator)
    need = math.ceil(max(oracle.demand(workload)) / options[variant.spec.name].capacity)
    return {accelerator: GpuSupply(inventory=max(1, need // 2))}


@dataclass(frozen=True)
class Measured:
    results: list[Result]
    curve: bound.Bound
    oracle_runs: int
    seconds: float
    supply: str


def run_job(
    traces: Path,
    seed: int,
    index: int,
    prices: Prices,
    routing: Routing,
    error: Mapping[str, float],
    headroom: float | None,
    scale: float = 1.0,
    lengths: str | None = None,
) -> Measured:
    """One shape with one price book: every policy and the oracle's curve (a process of its own)."""
    shape = shapes(traces, seed)[index]
    setup = with_profile_error(load_setup(STACK, prices), error)
    if headroom is not None:
        setup = replace(setup, spec=setup.spec.model_copy(update={"headroom": headroom}))
    trace = varied(shape.make(), scale, LENGTHS[lengths](traces, seed) if lengths else None, seed)
    supply = half_of_peak(setup, trace, shape.stockout) if shape.stockout else {}
    setup = replace(setup, supply=supply, routing=routing)
    started = time.monotonic()
    results = [simulate(p, setup, trace) for p in POLICIES]
    curve, sweep = bound.sweep(setup, trace)
    said = ", ".join(f"{k} inventory {v.inventory}" for k, v in supply.items())
    return Measured(results, curve, len(sweep), time.monotonic() - started, said)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoscaler.sim.bench", description=__doc__)
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--only", help="run the shapes whose name contains this")
    parser.add_argument("--quick", action="store_true", help="only the per-request shapes of an hour or less")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="shapes simulated at once (processes)")
    parser.add_argument("--routing", choices=["least-work", "prefix-aware", "round-robin"], default="least-work")
    parser.add_argument(
        "--profile-error",
        type=profile_error,
        default={},
        metavar="FIELD=FACTOR,...",
        help="scale the simulated replicas' true profiles (t0, k_tok, k_kv, kv), not the engine's priors",
    )
    parser.add_argument("--headroom", type=float, help="the model's spare capacity over demand (default its own, 0.1)")
    parser.add_argument("--scale", type=positive, default=1.0, help="multiply every shape's load by this")
    parser.add_argument(
        "--lengths", choices=sorted(LENGTHS), help="replay every shape with these request lengths instead of its own"
    )
    args = parser.parse_args(argv)
    if not args.traces.is_dir():
        print(f"error: no traces in {args.traces} (pass --traces)", file=sys.stderr)
        return 2
    lines = [
        "# Autoscaler benchmark",
        "",
        f"Stack: `{STACK.relative_to(ROOT)}`; cold start 240 s; seed {args.seed}; routing {args.routing}; "
        f"true profiles over the priors: {describe_error(args.profile_error)}; "
        f"headroom {'as the stack sets it' if args.headroom is None else args.headroom}; "
        f"load x{args.scale:g}; lengths {args.lengths or 'each shape its own'}. "
        "`vs bound` is a policy's cost over "
        "the oracle's cost at the policy's own attainment (its curve, interpolated); `>=` where the policy's "
        "attainment is below every oracle run (the bound there costs at most the cheapest run), `-` where it is "
        "above every run (no bound).",
        "",
    ]
    total = time.monotonic()
    chosen = [
        (k, shape, prices)
        for k, shape in enumerate(shapes(args.traces, args.seed))
        if not (args.only and args.only not in shape.name) and not (args.quick and not shape.quick)
        for prices in shape.prices
    ]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [
            pool.submit(
                run_job,
                args.traces,
                args.seed,
                k,
                prices,
                args.routing,
                args.profile_error,
                args.headroom,
                args.scale,
                args.lengths,
            )
            for k, _, prices in chosen
        ]
        for (k, shape, prices), future in zip(chosen, futures, strict=True):
            m = future.result()
            title = f"{shape.name}, {prices} prices"
            print(f"\n## {title} ({m.seconds:.0f} s)\n{report.table(m.results)}")
            print(verdict(m.results, m.curve), flush=True)
            folder = args.out / f"{k}-{prices}"
            report.plots(m.results, folder, title, m.curve)
            lines += [f"## {title}", ""]
            lines += [f"GPU supply: {m.supply}.", ""] if m.supply else []
            lines += [markdown(m.results, m.curve), "", verdict(m.results, m.curve), ""]
            lines += [f"Oracle curve: {points(m.curve)}.", ""]
            lines += [
                f"![cost vs SLO]({folder.name}/cost-vs-slo.png) ![default]({folder.name}/timeline-default.png)",
                "",
            ]
            per = m.seconds / (len(POLICIES) + m.oracle_runs)
            lines += [f"Simulated in {m.seconds:.1f} s ({per:.1f} s a run, {m.oracle_runs} oracle runs).", ""]
    took = time.monotonic() - total
    lines += [f"Whole benchmark: {took:.0f} s with {args.jobs} processes.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text("\n".join(lines))
    print(f"\nreport: {args.out / 'report.md'} ({took:.0f} s)")
    return 0


def profile_error(text: str) -> dict[str, float]:
    """`t0=1.3,k_tok=0.7`: a factor per profile field."""
    try:
        pairs = [item.split("=", 1) for item in text.split(",") if item]
        factors = {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIELD=FACTOR,... (e.g. t0=1.3,k_tok=0.7), got {text!r}") from None
    unknown = sorted(set(factors) - set(PROFILE_FIELDS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown profile field(s) {', '.join(unknown)}; known: {', '.join(PROFILE_FIELDS)}"
        )
    if any(f <= 0 for f in factors.values()):
        raise argparse.ArgumentTypeError(f"factors must be > 0: {text!r}")
    return factors


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def describe_error(factors: Mapping[str, float]) -> str:
    return ", ".join(f"{k} x{f:g}" for k, f in factors.items()) or "equal"


def points(curve: bound.Bound) -> str:
    return ", ".join(f"{a * 100:.2f}% ${c:,.0f}" for a, c in zip(curve.attainment, curve.cost_usd, strict=True))


def markdown(results: list[Result], curve: bound.Bound) -> str:
    rows = [
        "| policy | SLO attainment | vs bound | TTFT p99 | TPOT p99 | cost USD | scale events | refused "
        "| prefix hits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.policy} | {r.slo_attainment * 100:.2f}% | {curve.describe(r)} | {r.ttft_p99_s:.2f} s | "
            f"{r.tpot_p99_s * 1000:.0f} ms | {r.cost_usd:,.0f} | {r.scale_events} | {r.refused:,.0f} | "
            f"{r.prefix_hit_ratio * 100:.1f}% |"
        )
    return "\n".join(rows)


def verdict(results: list[Result], curve: bound.Bound) -> str:
    """The targets for `default`, each with the measured number."""
    by = {r.policy: r for r in results}
    d = by["default"]
    best = max(max(curve.attainment, default=0.0), by["static-peak"].slo_attainment)
    goal = min(0.99, best - 0.01)

    def cheaper(other: str) -> str:
        o = by[other]
        saving = 1 - d.cost_usd / o.cost_usd
        return f"{saving * 100:+.0f}% cheaper than {other} (attainment {o.slo_attainment * 100:.2f}%)"

    reach = (
        f"the oracle's curve reaches {curve.attainment[-1] * 100:.2f}%"
        if curve.attainment and curve.attainment[-1] >= by["static-peak"].slo_attainment
        else f"the oracle's curve stops at {max(curve.attainment, default=0.0) * 100:.2f}%, below static-peak"
    )
    return (
        f"{reach}; default: attainment {d.slo_attainment * 100:.2f}% (target >= {goal * 100:.2f}%), "
        f"cost {curve.describe(d)} the bound at equal attainment (target <= 1.15x), "
        f"{cheaper('wva-v1')}, {cheaper('hpa')}, {cheaper('static-peak')}"
    )


if __name__ == "__main__":
    sys.exit(main())
