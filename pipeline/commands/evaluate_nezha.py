"""``spanstream evaluate --nezha PATH``: replay real traces with labelled faults, score alerts."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.evaluate.nezha_incidents import format_incidents
from pipeline.evaluate.nezha_replay import (
    PACES,
    SPAN_KINDS,
    ReplayOptions,
    ReplayResult,
    timer_env,
)
from pipeline.evaluate.nezha_score import format_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--nezha`` options of ``spanstream evaluate``."""
    g = p.add_argument_group(
        "Nezha replay",
        "Replay the Nezha Online Boutique clips (a .tar.xz or its extracted directory) "
        "through a local Kafka broker and a real worker, then score its alerts per fault. "
        "Needs the Kafka jars (SPANSTREAM_CACHE).",
    )
    g.add_argument("--nezha", type=Path, metavar="PATH", help="the data set; runs the replay")
    g.add_argument(
        "--speedup", type=float, default=10.0, help="event time per wall time (live pace)"
    )
    g.add_argument(
        "--pace",
        choices=PACES,
        default="live",
        help="live: each trace sent when it ends, sped up; backlog: everything at once "
        "(windows then close before their spans arrive: see LateSpans)",
    )
    g.add_argument(
        "--span-kinds",
        choices=SPAN_KINDS,
        default="none",
        help="none: send spans without kind, as recorded; reconstructed: a span whose parent "
        "is in another service is sent as server, that parent as client (if not a server "
        "itself), so the service graph finds calls",
    )
    g.add_argument(
        "--scale-timers",
        action="store_true",
        help="live pace: divide the worker's wall-clock timers (decision wait, graph flush) "
        "by --speedup, so service-graph windows reach the incident step before their "
        "windows close, as in real time",
    )
    g.add_argument("--window-seconds", type=int, default=60, help="the worker's window size")
    g.add_argument(
        "--fault-seconds", type=int, default=120, help="how long a fault lasts, for scoring"
    )
    g.add_argument("--workdir", type=Path, help="keep broker, worker and data here (default: temp)")
    g.add_argument(
        "--dump-windows",
        type=Path,
        metavar="FILE",
        help="also write the replay's closed windows and faults to FILE (JSON lines)",
    )
    g.add_argument(
        "--windows",
        type=Path,
        metavar="FILE",
        help="no replay: judge the closed windows of a --dump-windows FILE offline "
        "(WindowJudge in close order, same scoring) in seconds",
    )
    g.add_argument(
        "--judge-detector",
        metavar="NAME",
        help="with --windows: the detector every series gets (default: the worker's)",
    )


def settings_text(options: ReplayOptions, result: ReplayResult) -> str:
    """What was replayed and how, printed under the table."""
    late = result.late_spans
    speed = f", speedup {options.speedup:g}" if options.pace == "live" else ""
    return "\n".join(
        [
            f"replay: {result.clips} clips, {result.spans} spans in {result.messages} traces "
            f"({result.skipped_rows} unreadable rows), gaps closed: {result.replay_s / 60:.1f} "
            f"min of event time in {result.wall_s / 60:.1f} min wall",
            f"pace {options.pace}{speed}, windows {options.window_seconds} s,"
            f" fault range = injection + {options.fault_seconds} s + 2 windows (to the next fault)",
            f"worker: default detector, {result.requests_counted} spans counted in windows, "
            f"{late} late; last window closed: {'yes' if result.windows_closed else 'NO'}",
            f"worker timers: {timer_env(options) or 'defaults'}; "
            f"span kinds: {options.span_kinds} ({result.kinds} spans sent with a kind); "
            f"service graph: {result.edges} edges, {result.edge_calls} calls",
        ]
    )


def run_offline(args: argparse.Namespace) -> int:
    """``--windows FILE``: judge dumped windows without Kafka or a worker."""
    from pipeline.detect.scorer import ScorerConfig
    from pipeline.evaluate.nezha_offline import evaluate, read_file

    data = read_file(args.windows)
    config = ScorerConfig(args.judge_detector) if args.judge_detector else None
    try:
        report = evaluate(data, config, args.fault_seconds)
    except KeyError as exc:
        raise ConfigError(f"--judge-detector: {exc.args[0]}") from None
    print(format_report(report, markdown=args.markdown))
    print()
    who = args.judge_detector or "default detector"
    print(
        f"offline: {len(data.windows)} closed windows of {args.windows} judged by the "
        f"{who}, fault range = injection + {args.fault_seconds} s + 2 windows"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.windows is not None:
        return run_offline(args)
    from pipeline.evaluate.nezha_replay import run as replay

    options = ReplayOptions(
        args.nezha,
        speedup=args.speedup,
        pace=args.pace,
        window_seconds=args.window_seconds,
        fault_seconds=args.fault_seconds,
        workdir=args.workdir,
        dump_windows=args.dump_windows,
        span_kinds=args.span_kinds,
        scale_timers=args.scale_timers,
    )
    result = replay(options)
    print(format_report(result.report, markdown=args.markdown))
    if result.incidents is not None:
        print()
        print(format_incidents(result.incidents, markdown=args.markdown))
    print()
    print(settings_text(options, result))
    return 0
