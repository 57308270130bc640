"""python -m autoscaler.sim: replay a trace against a stack's first model and its variants under one policy (or
all), print a table (or the contract's JSON), and write plots to an output folder."""

import argparse
import json
import sys
from pathlib import Path

from autoscaler.sim import report
from autoscaler.sim.run import POLICIES, progress_stream, simulate
from autoscaler.sim.setup import DEFAULT_COLD_START_S, load_setup, stack_file
from autoscaler.sim.traces import Trace, load, scaled, synthetic, synthetic_lengths

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoscaler.sim", description=__doc__)
    parser.add_argument("--stack", default="prod", help="dev, prod or a path to a Pulumi.<name>.yaml")
    parser.add_argument(
        "--trace", type=Path, help="Azure CSV, Mooncake JSONL or a rate envelope CSV (default: synthetic day)"
    )
    parser.add_argument("--lengths", type=Path, help="request lengths for a rate envelope (Azure or ShareGPT CSV)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the load")
    parser.add_argument("--policy", choices=[*POLICIES, "all"], default="default")
    parser.add_argument("--prices", choices=["seed", "aws-2025"], default="seed")
    parser.add_argument(
        "--cold-start", type=float, default=DEFAULT_COLD_START_S, help="seconds until a new replica serves"
    )
    parser.add_argument(
        "--routing",
        choices=["least-work", "round-robin", "prefix-aware"],
        default="least-work",
        help="least outstanding work (default); prefix-aware weighs a replica's cached prefix against its load",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (one object, or a list with --policy all)"
    )
    parser.add_argument("--out", type=Path, help="folder for the plots (default build/sim)")
    parser.add_argument(
        "--progress", action="store_true", help="show a progress bar even when stderr is not a terminal"
    )
    args = parser.parse_args(argv)
    try:
        setup = load_setup(stack_file(args.stack, ROOT), args.prices, args.cold_start)
        trace: Trace = (
            load(args.trace, args.lengths, args.seed)
            if args.trace
            else synthetic(24, 4.0, synthetic_lengths(20_000, args.seed), args.seed)
        )
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    setup = setup.__class__(**{**setup.__dict__, "routing": args.routing, "seed": args.seed})
    trace = scaled(trace, args.scale, args.seed) if args.scale != 1.0 else trace
    names = list(POLICIES) if args.policy == "all" else [args.policy]
    results = [simulate(n, setup, trace, progress_stream(args.progress)) for n in names]
    if args.json:
        out = [r.summary() for r in results]
        print(json.dumps(out[0] if len(out) == 1 else out))
    else:
        print(report.table(results))
    report.plots(results, args.out or ROOT / "build" / "sim")
    return 0


if __name__ == "__main__":
    sys.exit(main())
