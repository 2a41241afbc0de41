"""``spanstream evaluate``: every detector on labelled synthetic scenarios, as a table
(or, with ``--nezha``, the worker on real traces with labelled faults; with ``--rca``,
incidents and root causes of generated faults)."""

from __future__ import annotations

import argparse
import functools
import time

from pipeline.commands import evaluate_nezha, evaluate_rca
from pipeline.errors import ConfigError

EVALUATED = ("robust", "red", "seasonal", "hst", "combined", "tail", "random")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` parser."""
    p = subparsers.add_parser(
        "evaluate",
        help="score every detector on labelled synthetic scenarios",
        description="Simulate per-window RED features with injected, labelled anomalies and "
        "print event recall, alert-onset precision, F1, detection delay, false alarms per day "
        "and AUC-PR per detector and scenario. The first simulated day holds no event.",
    )
    p.add_argument("--days", type=int, default=2, help="simulated days per operation (>= 2)")
    p.add_argument("--ops", type=int, default=3, help="simulated operations per scenario")
    p.add_argument("--seed", type=int, default=1, help="random seed of the simulation")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument(
        "--detectors", default=",".join(EVALUATED), help="comma-separated detectors to evaluate"
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    evaluate_nezha.add_arguments(p)
    evaluate_rca.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print the table."""
    if args.nezha is not None or args.windows is not None:
        return evaluate_nezha.run(args)
    if args.rca:
        return evaluate_rca.run(args)
    from pipeline.detect.registry import build_detector
    from pipeline.evaluate.harness import evaluate, format_table

    if args.days < 2:
        raise ConfigError(f"--days {args.days}: need at least 2 (day 1 is warm-up only)")
    if args.ops < 1 or args.jobs < 1:
        raise ConfigError("--ops and --jobs must be at least 1")
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    unknown = [n for n in names if n not in EVALUATED]
    if unknown or not names:
        raise ConfigError(f"--detectors: unknown {unknown or 'empty'}; known: {EVALUATED}")
    started = time.monotonic()
    factories = {n: functools.partial(build_detector, n) for n in names}
    rows = evaluate(factories, days=args.days, seed=args.seed, ops=args.ops, jobs=args.jobs)
    print(format_table(rows, markdown=args.markdown))
    print(
        f"\n{args.ops} ops x {args.days} days per scenario, seed {args.seed}, "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0
