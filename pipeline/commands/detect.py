"""``spanstream detect``: score a ``timestamp,value`` CSV series with the pipeline's detectors."""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from pipeline.errors import ConfigError, InputError

DETECTOR_CHOICES = ("robust", "seasonal", "hst", "combined")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``detect`` parser."""
    p = subparsers.add_parser(
        "detect",
        help="score a timestamp,value CSV series for anomalies",
        description="Read timestamp,value rows (ISO 8601 or unix seconds) and write "
        "timestamp,value,anomaly_score rows in input order; scores are in [0, 1], "
        ">= 0.5 is an alert.",
    )
    p.add_argument("--input", required=True, type=Path, help="CSV file with timestamp,value")
    p.add_argument("--output", type=Path, help="CSV to write (default: stdout)")
    p.add_argument(
        "--detector",
        choices=DETECTOR_CHOICES,
        default=None,
        help="detector (default: the pipeline's default)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="detector parameter override, repeatable (e.g. threshold=5)",
    )
    p.set_defaults(func=run)


def parse_timestamp(text: str) -> float:
    """Unix seconds from ISO 8601 or a number of seconds.

    >>> parse_timestamp("1970-01-01T00:01:00Z"), parse_timestamp("60")
    (60.0, 60.0)
    """
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        raise ValueError("naive timestamp") from None
    return stamp.timestamp()


def read_series(lines: Iterable[str], name: str) -> list[tuple[str, float, float]]:
    """Rows ``(timestamp text, unix seconds, value)``; InputError names the bad line.

    >>> read_series(["timestamp,value", "60,1.5"], "s.csv")
    [('60', 60.0, 1.5)]
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise InputError(f"{name}:1: empty file, expected a timestamp,value header")
    columns = [h.strip().lower() for h in header]
    missing = [c for c in ("timestamp", "value") if c not in columns]
    if missing:
        raise InputError(f"{name}:1: missing column(s) {', '.join(missing)} in header")
    t_col, v_col = columns.index("timestamp"), columns.index("value")
    rows = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(t_col, v_col):
            raise InputError(f"{name}:{line}: expected {len(columns)} columns, got {len(row)}")
        stamp, raw = row[t_col].strip(), row[v_col].strip()
        try:
            seconds = parse_timestamp(stamp)
        except ValueError:
            raise InputError(
                f"{name}:{line}: timestamp {stamp!r} is not ISO 8601 "
                "with a time zone or unix seconds"
            ) from None
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"{name}:{line}: value {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"{name}:{line}: value {raw!r} is not a finite number")
        rows.append((stamp, seconds, value))
    if not rows:
        raise InputError(f"{name}:{reader.line_num}: no data rows after the header")
    return rows


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` to a dict; ConfigError on a malformed item."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def score_series(
    values: Sequence[float], order: Sequence[int], detector: str, params: dict[str, str]
) -> list[float]:
    """Scores per input row, computed in time order (score-then-learn)."""
    from pipeline.detect.base import VALUE_SPECS
    from pipeline.detect.registry import build_detector

    try:
        model = build_detector(detector, params, specs=VALUE_SPECS)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"detector {detector}: {exc}") from None
    scores = [0.0] * len(values)
    for i in order:
        x = {"value": values[i]}
        scores[i] = model.score_one(x)
        model.learn_one(x)
    return scores


def write_scores(
    out: TextIO, rows: Sequence[tuple[str, float, float]], scores: Sequence[float]
) -> None:
    """``timestamp,value,anomaly_score`` rows in input order."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score"])
    for (stamp, _, value), score in zip(rows, scores, strict=True):
        writer.writerow([stamp, repr(value), f"{score:.6f}"])


def run(args: argparse.Namespace) -> int:
    """Read, score and write the series."""
    from pipeline.detect.scorer import build_default

    try:
        with args.input.open(newline="", encoding="utf-8") as f:
            rows = read_series(f, args.input.name)
    except OSError as exc:
        raise InputError(f"{args.input}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{args.input}: not a UTF-8 text file") from None
    detector = args.detector or build_default().config.detector
    order = sorted(range(len(rows)), key=lambda i: rows[i][1])
    scores = score_series([r[2] for r in rows], order, detector, parse_params(args.param))
    if args.output is None:
        write_scores(sys.stdout, rows, scores)
    else:
        with args.output.open("w", newline="", encoding="utf-8") as out:
            write_scores(out, rows, scores)
    return 0
