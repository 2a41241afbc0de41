"""``spanstream evaluate --rca``: labelled faults through the pure stages, incidents and causes."""

from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ProcessPoolExecutor

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--rca`` options of ``spanstream evaluate``."""
    g = p.add_argument_group(
        "Incidents and root cause",
        "Generate a labelled fault set per seed (every service as root cause, latency, errors "
        "and saturation, some on one pod or one version, quiet periods between) and run it "
        "through decode, enrich, windows, judge, signals, grouping and ranking, no Kafka. "
        "Prints incidents per fault, alerts per fault before and after grouping, root-cause "
        "top-1/top-3 accuracy, attributes named and false incidents per simulated day.",
    )
    g.add_argument("--rca", action="store_true", help="run the incident/root-cause evaluation")
    g.add_argument("--rca-seeds", default="1,2", help="comma-separated seeds, one fault set each")
    g.add_argument("--rca-rate", type=float, default=10.0, help="traces per second")
    g.add_argument("--rca-window", type=int, default=15, help="window seconds of the run")


def _seeds(raw: str) -> list[int]:
    try:
        seeds = [int(s) for s in raw.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--rca-seeds {raw!r}: comma-separated integers expected") from None
    if not seeds:
        raise ConfigError("--rca-seeds: at least one seed")
    return seeds


def run(args: argparse.Namespace) -> int:
    """Run every seed (``--jobs`` at a time) and print one row per seed."""
    from pipeline.evaluate.rca import T0, RcaConfig, run_seed
    from pipeline.evaluate.rca_report import format_table, score

    seeds = _seeds(args.rca_seeds)
    if args.rca_rate <= 0 or args.rca_window < 1 or args.jobs < 1:
        raise ConfigError("--rca-rate must be > 0, --rca-window and --jobs >= 1")
    config = RcaConfig(window_s=args.rca_window, rate=args.rca_rate)
    started = time.monotonic()
    log.info("rca: %d seeds, %d at a time", len(seeds), min(args.jobs, len(seeds)))
    outcomes = []
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(seeds))) as pool:
        for seed, outcome in zip(
            seeds, pool.map(run_seed, seeds, [config] * len(seeds)), strict=True
        ):
            outcomes.append(outcome)
            log.info("rca: seed %d done (%d spans), %.0f s", seed, outcome.spans,
                     time.monotonic() - started)  # fmt: skip
    rows = [score(s, o, T0, config.gap_windows) for s, o in zip(seeds, outcomes, strict=True)]
    print(format_table(rows, markdown=args.markdown))
    spans = sum(o.spans for o in outcomes)
    hours = sum(o.faults.duration_s for o in outcomes) / 3600
    print(
        f"\n{len(seeds)} seeds, {hours:.1f} simulated hours, {spans} spans, "
        f"{config.rate:g} traces/s, {config.window_s} s windows, "
        f"{time.monotonic() - started:.0f} s"
    )
    return 0
