"""``spanstream detect``: score a ``timestamp,value`` CSV series with the pipeline's detectors."""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from itertools import pairwise
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.detect.base import FeatureSpec
from pipeline.errors import ConfigError, InputError

DETECTOR_CHOICES = ("robust", "red", "seasonal", "hst", "combined", "tail")
SERIES_DEFAULT = "tail"
"""Detector of ``spanstream detect``, chosen on NAB (see pipeline/detect/README.md)."""
KINDS = ("auto", "count", "latency", "ratio", "value")


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
        help=f"detector (default: {SERIES_DEFAULT})",
    )
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="auto",
        help="what the series is: count (square-root scale), latency (log scale, alerts "
        "upwards), ratio (a share in [0, 1]), value (as is) or auto (guessed from the "
        "values, see pipeline/detect/README.md)",
    )
    p.add_argument(
        "--timezone",
        default="UTC",
        help="IANA zone of timestamps written without an offset (default UTC)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="detector parameter override, repeatable (e.g. threshold=5)",
    )
    p.set_defaults(func=run)


def parse_timestamp(text: str, zone: tzinfo = UTC) -> float:
    """Unix seconds from ISO 8601 or a number of seconds; no offset means ``zone``.

    >>> parse_timestamp("1970-01-01T00:01:00Z"), parse_timestamp("60")
    (60.0, 60.0)
    >>> parse_timestamp("1970-01-01 00:01:00")
    60.0
    """
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=zone)
    return stamp.timestamp()


def parse_zone(name: str) -> tzinfo:
    """An IANA time zone; ConfigError names the option and value."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {name!r}: not a known IANA time zone") from None


def guess_kind(values: Sequence[float]) -> str:
    """The ``auto`` heuristic: what the values look like (see pipeline/detect/README.md).

    Non-negative integers are counts (square-root scale, Poisson noise); values
    all within [0, 1] a ratio; anything else is read as is. A log scale is
    never guessed: a wide positive range (CPU from 2 % to 99 %) is not by itself
    multiplicative noise, and a log would compress the high values where such
    series alarm; say ``--kind latency`` for a latency.

    >>> guess_kind([0, 3, 1]), guess_kind([0.1, 0.5]), guess_kind([1.5, 80.0]), guess_kind([-1.0])
    ('count', 'ratio', 'value', 'value')
    """
    if all(v >= 0 and v == int(v) for v in values):
        return "count"
    if all(0.0 <= v <= 1.0 for v in values):
        return "ratio"
    return "value"


def specs_for(kind: str) -> tuple[FeatureSpec, ...]:
    """The one-feature spec of a series kind."""
    transform, direction = {
        "count": ("sqrt", "both"),
        "latency": ("log", "up"),
        "ratio": ("ratio", "both"),
    }.get(kind, ("identity", "both"))
    return (FeatureSpec("value", transform, direction),)  # type: ignore[arg-type]


#: Longest season ``tail`` is given (points per day): it keeps three of them per feature.
MAX_SEASON = 5000


def points_per_day(seconds: Sequence[float]) -> int:
    """Points in a day at the series' median sampling interval (0 if not a whole number >= 2).

    >>> points_per_day([0, 300, 600, 900]), points_per_day([0, 7, 14])
    (288, 0)
    """
    steps = sorted(b - a for a, b in pairwise(seconds) if b > a)
    if not steps:
        return 0
    per_day = 86400.0 / steps[len(steps) // 2]
    whole = round(per_day)
    return whole if 2 <= whole <= MAX_SEASON and abs(per_day - whole) < 1e-6 * per_day else 0


def read_series(
    lines: Iterable[str], name: str, zone: tzinfo = UTC
) -> list[tuple[str, float, float]]:
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
            seconds = parse_timestamp(stamp, zone)
        except ValueError:
            raise InputError(
                f"{name}:{line}: timestamp {stamp!r} is not ISO 8601 or unix seconds"
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
    values: Sequence[float],
    order: Sequence[int],
    detector: str,
    params: dict[str, str],
    kind: str = "value",
    day: int = 0,
) -> list[float]:
    """Scores per input row, computed in time order (score-then-learn)."""
    from pipeline.detect.registry import build_detector

    if kind == "auto":
        kind = guess_kind(values)
    if detector == "tail" and "season_length" not in params and day:
        params = {**params, "season_length": str(day)}
    try:
        model = build_detector(detector, params, specs=specs_for(kind))
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
    try:
        with args.input.open(newline="", encoding="utf-8") as f:
            rows = read_series(f, args.input.name, parse_zone(args.timezone))
    except OSError as exc:
        raise InputError(f"{args.input}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{args.input}: not a UTF-8 text file") from None
    detector = args.detector or SERIES_DEFAULT
    order = sorted(range(len(rows)), key=lambda i: rows[i][1])
    params = parse_params(args.param)
    day = points_per_day([rows[i][1] for i in order])
    scores = score_series([r[2] for r in rows], order, detector, params, args.kind, day)
    if args.output is None:
        write_scores(sys.stdout, rows, scores)
    else:
        with args.output.open("w", newline="", encoding="utf-8") as out:
            write_scores(out, rows, scores)
    return 0
