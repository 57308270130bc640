"""python -m autoscaler.sim.bench (make bench): every policy on four workloads, with the seed's and AWS 2025
prices; prints the numbers and writes a markdown report with plots. Reads the development traces from
../shared/traces (or --traces)."""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from autoscaler.sim import report
from autoscaler.sim.run import POLICIES, Result, progress_stream, simulate
from autoscaler.sim.setup import Prices, load_setup
from autoscaler.sim.traces import Trace, load, load_lengths, materialize, mixed, synthetic, with_burst

ROOT = Path(__file__).resolve().parents[2]
STACK = Path(__file__).with_name("bench-stack.yaml")
AZURE = "AzureLLMInferenceTrace_conv.csv"


def scenarios(traces: Path, seed: int) -> dict[str, Callable[[], Trace]]:
    conv = load_lengths(traces / AZURE)
    return {
        "conversation week (27M requests, aggregate)": lambda: load(
            traces / "azure2024_conv_week_rate_envelope_digitized.csv", traces / AZURE, seed
        ),
        "bursts (8 req/s, x5 for 5 min, per request)": lambda: materialize(
            with_burst(8.0, 120, 60, 5.0, 5, conv), seed
        ),
        "Azure conversation hour (per request)": lambda: load(traces / AZURE, None, seed),
        "mixed sizes: ShareGPT + 5% Mooncake, diurnal 6 h (per request)": lambda: materialize(
            synthetic(
                6,
                3.0,
                mixed(
                    load_lengths(traces / "sharegpt_8k_filtered_stats_llama2_tokenizer.csv"),
                    load_lengths(traces / "mooncake_synthetic_trace.jsonl"),
                    0.05,
                    50_000,
                    seed,
                ),
                seed,
                bursts=0,
            ),
            seed,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoscaler.sim.bench", description=__doc__)
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.traces.is_dir():
        print(f"error: no traces in {args.traces} (pass --traces)", file=sys.stderr)
        return 2
    lines = [
        "# Autoscaler benchmark",
        "",
        f"Stack: `{STACK.relative_to(ROOT)}`; cold start 240 s; seed {args.seed}.",
        "",
    ]
    for k, (name, make) in enumerate(scenarios(args.traces, args.seed).items()):
        if args.only and args.only not in name:
            continue
        trace = make()
        for prices in ("seed", "aws-2025"):
            price_book: Prices = prices
            setup = load_setup(STACK, price_book)
            started = time.monotonic()
            results = [simulate(p, setup, trace, progress_stream(args.progress)) for p in POLICIES]
            took = time.monotonic() - started
            title = f"{name}, {prices} prices"
            print(f"\n## {title} ({took:.0f} s for {len(POLICIES)} policies)\n{report.table(results)}")
            print(verdict(results), flush=True)
            folder = args.out / f"{k}-{prices}"
            report.plots(results, folder, title)
            lines += [f"## {title}", "", markdown(results), "", verdict(results), ""]
            lines += [
                f"![cost vs SLO]({folder.name}/cost-vs-slo.png) ![default]({folder.name}/timeline-default.png)",
                "",
            ]
            lines += [f"Simulated in {took:.1f} s ({took / len(POLICIES):.1f} s a policy).", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text("\n".join(lines))
    print(f"\nreport: {args.out / 'report.md'}")
    return 0


def markdown(results: list[Result]) -> str:
    rows = [
        "| policy | SLO attainment | TTFT p99 | TPOT p99 | cost USD | vs oracle | scale events |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    oracle = next(r for r in results if r.policy == "oracle").cost_usd
    for r in results:
        rows.append(
            f"| {r.policy} | {r.slo_attainment * 100:.2f}% | {r.ttft_p99_s:.2f} s | {r.tpot_p99_s * 1000:.0f} ms | "
            f"{r.cost_usd:,.0f} | {r.cost_usd / oracle:.2f}x | {r.scale_events} |"
        )
    return "\n".join(rows)


def verdict(results: list[Result]) -> str:
    """The issue's targets for `default`, each with the measured number."""
    by = {r.policy: r for r in results}
    d = by["default"]

    def cheaper(other: str) -> str:
        o = by[other]
        saving = 1 - d.cost_usd / o.cost_usd
        return f"{saving * 100:+.0f}% cheaper than {other} (attainment {o.slo_attainment * 100:.2f}%)"

    return (
        f"default: attainment {d.slo_attainment * 100:.2f}% (target >= 99%), "
        f"cost {d.cost_usd / by['oracle'].cost_usd:.2f}x oracle (target <= 1.15x), "
        f"{cheaper('wva-v1')}, {cheaper('hpa')}, {cheaper('static-peak')}"
    )


if __name__ == "__main__":
    sys.exit(main())
