"""``spanstream slo rules``: Prometheus recording and alerting rules for an SLO file."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add the ``slo`` subcommand."""
    parser = subparsers.add_parser(
        "slo", help="SLO tools", description="Tools for the SLO file (docs/slo.md)."
    )
    sub = parser.add_subparsers(dest="slo_command", metavar="ACTION", required=True)
    rules = sub.add_parser(
        "rules",
        help="write Prometheus recording and burn-rate alerting rules for the SLO file",
        description=(
            "Validate the SLO file and write a Prometheus rule file: per SLO, its error ratio "
            "over every burn-rule window (recording rules slo:sli_error:ratio_rate<W>, from "
            "the spanmetrics metrics traces_span_metrics_calls_total and "
            "traces_span_metrics_duration_milliseconds_bucket that workers export) and one "
            "SloErrorBudgetBurn alert per burn rule (multiwindow, multi-burn-rate). Check it "
            "with `promtool check rules`. See docs/prometheus.md."
        ),
    )
    rules.add_argument(
        "--slo-file", help="the SLO file (default: SPANSTREAM_SLO_FILE)", metavar="PATH"
    )
    rules.add_argument(
        "--output",
        "-o",
        help="write the rules here (replaced atomically) instead of to standard output",
        metavar="PATH",
    )
    rules.set_defaults(func=run_rules)


def run_rules(args: argparse.Namespace) -> int:
    """Print or write the rule file."""
    from pipeline.slo.prometheus_rules import render_rules
    from pipeline.slo.spec import load_slos

    path = args.slo_file or os.environ.get("SPANSTREAM_SLO_FILE", "")
    if not path:
        raise ConfigError("no SLO file: give --slo-file or set SPANSTREAM_SLO_FILE")
    text = render_rules(load_slos(path))
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomically(Path(args.output), text)
    return 0


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename: a reader (Prometheus reloading) sees the
    old file or the new one, never half of one."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    except OSError as exc:
        raise ConfigError(f"--output {path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"--output {path}: cannot write: {exc.strerror}") from None
