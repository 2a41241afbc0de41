"""The ``spanstream`` command line: one subcommand per module in :mod:`pipeline.commands`.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable taking the parsed namespace and returning an exit
code. Heavy imports (Faust, chdb, River) happen inside those callables so that
``spanstream --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.errors import SpanstreamError
from pipeline.printable import install_log_escaping, printable

COMMANDS = (
    "worker",
    "migrate",
    "topics",
    "generate",
    "alerts",
    "detect",
    "evaluate",
    "bench",
    "query",
    "slo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spanstream",
        description=(
            "OpenTelemetry traces from the Collector's Kafka exporter -> tail-sampled spans, "
            "per-window RED metrics and anomaly alerts in ClickHouse and Kafka."
        ),
        epilog="Settings come from SPANSTREAM_* environment variables; see docs/settings.md.",
    )
    parser.add_argument("--version", action="version", version=f"spanstream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pipeline.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pipeline.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Some commands read settings for their defaults while the parser is built.
        parser = build_parser()
    except SpanstreamError as exc:
        print(f"spanstream: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    install_log_escaping()  # log messages quote span data: names, keys, SQL errors
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except SpanstreamError as exc:
        print(printable(f"spanstream: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
