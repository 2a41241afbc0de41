"""SLO definitions: the file ``SPANSTREAM_SLO_FILE`` names, validated once into frozen values.

The file (YAML, or JSON, which is YAML) is checked against
``schemas/slo/slos.schema.json`` and then against the rules a schema cannot state
(unique names, a threshold exactly for latency SLIs, a short window shorter than its
long window). The first problem raises one :class:`~pipeline.errors.ConfigError` naming
the file, the SLO and the field; the worker prints it as one line and exits non-zero.

>>> doc = {"slos": [{"name": "checkout-avail", "service": "checkout",
...                  "sli": "availability", "objective": 99.9}]}
>>> slo = parse_slos(doc, "slos.yaml").slos[0]
>>> slo.window_days, slo.operations, round(slo.error_budget, 6)
(30, (), 0.001)
>>> [(r.severity, r.long_window_seconds, r.short_window_seconds, r.factor)
...  for r in slo.burn_alerts][:2]
[('page', 3600, 300, 14.4), ('page', 21600, 1800, 6.0)]
>>> parse_slos({"slos": [{"name": "x", "service": "s", "sli": "latency",
...                       "objective": 99}]}, "slos.yaml")
Traceback (most recent call last):
...
pipeline.errors.ConfigError: slos.yaml: slo 'x': threshold_ms: required for a latency SLI
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "slo" / "slos.schema.json"

Sli = Literal["availability", "latency"]
Severity = Literal["page", "ticket"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")


@dataclass(frozen=True)
class BurnAlertRule:
    """Fire when the burn rate exceeds ``factor`` over both the long and the short window.

    A burn rate of 1 spends the error budget exactly over the compliance window;
    ``factor`` x ``long_window_seconds`` / compliance window is the share of the budget
    spent by the time the rule fires (14.4 x 1 h / 30 d = 2 %).
    """

    severity: Severity
    long_window_seconds: int
    short_window_seconds: int
    factor: float


#: The Google SRE workbook's multiwindow, multi-burn-rate alerts (chapter 5, table 5-8).
DEFAULT_BURN_ALERTS: tuple[BurnAlertRule, ...] = (
    BurnAlertRule("page", 3600, 300, 14.4),
    BurnAlertRule("page", 6 * 3600, 1800, 6.0),
    BurnAlertRule("ticket", 86400, 2 * 3600, 3.0),
    BurnAlertRule("ticket", 3 * 86400, 6 * 3600, 1.0),
)


@dataclass(frozen=True)
class Slo:
    """One SLO: the share of a service's requests that are good, over ``window_days``.

    ``operations`` empty means every operation of the service. ``objective`` is a
    percentage (99.9). A request is good for ``availability`` when it is not in error,
    for ``latency`` when its duration is at most ``threshold_ms``.
    """

    name: str
    service: str
    operations: tuple[str, ...]
    sli: Sli
    objective: float
    threshold_ms: float | None = None
    window_days: int = 30
    burn_alerts: tuple[BurnAlertRule, ...] = DEFAULT_BURN_ALERTS
    description: str = ""

    @property
    def error_budget(self) -> float:
        """The share of requests allowed to be bad (0.001 for 99.9)."""
        return 1.0 - self.objective / 100.0

    @property
    def window_seconds(self) -> int:
        """The compliance window in seconds."""
        return self.window_days * 86400

    @property
    def threshold_ns(self) -> int | None:
        """The latency threshold in nanoseconds (how span durations are counted)."""
        return None if self.threshold_ms is None else round(self.threshold_ms * 1_000_000)

    def covers(self, service: str, operation: str) -> bool:
        """Whether requests of (service, operation) count in this SLO."""
        return service == self.service and (not self.operations or operation in self.operations)


@dataclass(frozen=True)
class SloSet:
    """Every SLO of one file, in file order; ``source`` names the file."""

    slos: tuple[Slo, ...] = ()
    source: str = ""

    def for_series(self, service: str, operation: str) -> tuple[Slo, ...]:
        """The SLOs that count requests of (service, operation)."""
        return tuple(s for s in self.slos if s.covers(service, operation))

    def thresholds_ns(self, service: str) -> tuple[int, ...]:
        """The distinct latency thresholds (ns, ascending) the service's SLOs need counted."""
        found = {s.threshold_ns for s in self.slos if s.service == service}
        return tuple(sorted(t for t in found if t is not None))

    def thresholds_by_service(self) -> dict[str, tuple[int, ...]]:
        """Every service with latency SLOs and the thresholds (ns) to count for it."""
        return {
            service: found
            for service in sorted(self.services())
            if (found := self.thresholds_ns(service))
        }

    def services(self) -> frozenset[str]:
        return frozenset(s.service for s in self.slos)

    def longest_rule_window_seconds(self) -> int:
        """The longest long window of any rule (0 without SLOs): how far back burn state reaches."""
        return max((r.long_window_seconds for s in self.slos for r in s.burn_alerts), default=0)


def load_slos(path: str | Path) -> SloSet:
    """Read and validate the SLO file at ``path`` (raises :class:`ConfigError`)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read SLO file: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: invalid YAML: {first_line}") from None
    return parse_slos(document, str(path))


def parse_slos(document: Any, source: str) -> SloSet:
    """Validate a parsed document into an :class:`SloSet` (raises :class:`ConfigError`)."""
    _check_schema(document, source)
    defaults = _rules(document.get("burn_alerts"), f"{source}: burn_alerts")
    slos = tuple(_slo(entry, defaults, source) for entry in document["slos"])
    seen: set[str] = set()
    for slo in slos:
        if slo.name in seen:
            raise ConfigError(f"{source}: slo {slo.name!r}: name: defined twice")
        seen.add(slo.name)
    return SloSet(slos, source)


def parse_duration(value: int | str) -> int:
    """Seconds of a schema-checked duration (``300``, ``"5m"``, ``"1h"``, ``"3d"``).

    >>> parse_duration("5m"), parse_duration("1d"), parse_duration(90)
    (300, 86400, 90)
    """
    if isinstance(value, int):
        return value
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """The shortest exact text of a duration, as Prometheus writes it.

    >>> format_duration(300), format_duration(86400), format_duration(90), format_duration(7200)
    ('5m', '1d', '90s', '2h')
    """
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def _slo(entry: dict[str, Any], defaults: tuple[BurnAlertRule, ...], source: str) -> Slo:
    where = f"{source}: slo {entry['name']!r}"
    sli = entry["sli"]
    threshold = entry.get("threshold_ms")
    if sli == "latency" and threshold is None:
        raise ConfigError(f"{where}: threshold_ms: required for a latency SLI")
    if sli == "availability" and threshold is not None:
        raise ConfigError(f"{where}: threshold_ms={threshold!r}: only for a latency SLI")
    own = entry.get("burn_alerts")
    return Slo(
        name=entry["name"],
        service=entry["service"],
        operations=tuple(entry.get("operations") or ()),
        sli=sli,
        objective=float(entry["objective"]),
        threshold_ms=None if threshold is None else float(threshold),
        window_days=int(entry.get("window_days", 30)),
        burn_alerts=defaults if own is None else _rules(own, f"{where}: burn_alerts"),
        description=str(entry.get("description", "")),
    )


def _rules(entries: list[dict[str, Any]] | None, where: str) -> tuple[BurnAlertRule, ...]:
    if entries is None:
        return DEFAULT_BURN_ALERTS
    rules = []
    for i, entry in enumerate(entries):
        long_s = parse_duration(entry["long_window"])
        short_s = parse_duration(entry["short_window"])
        if short_s >= long_s:
            raise ConfigError(
                f"{where}[{i}].short_window={entry['short_window']!r}: "
                f"must be shorter than long_window ({entry['long_window']!r})"
            )
        rules.append(BurnAlertRule(entry["severity"], long_s, short_s, float(entry["factor"])))
    return tuple(rules)


#: What each field must be, for errors (the schema's own messages are hard to read).
_EXPECTED = {
    "name": "expected letters, digits, '_', '.', ':' or '-' (first a letter or digit, <= 128)",
    "service": "expected a non-empty string",
    "operations": "expected a list of distinct non-empty operation names",
    "sli": "expected 'availability' or 'latency'",
    "threshold_ms": "expected a number of milliseconds > 0",
    "objective": "expected a percentage between 0 and 100 (exclusive), such as 99.9",
    "window_days": "expected an integer number of days from 1 to 366",
    "description": "expected a string",
    "burn_alerts": "expected a list of 1 to 16 rules",
    "severity": "expected 'page' or 'ticket'",
    "long_window": "expected a duration: seconds, or digits and s/m/h/d such as '1h'",
    "short_window": "expected a duration: seconds, or digits and s/m/h/d such as '5m'",
    "factor": "expected a number > 0",
    "slos": "expected a list of SLOs",
}


@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def _check_schema(document: Any, source: str) -> None:
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'slos' list")
    errors = sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.path])
    if errors:
        raise ConfigError(_describe(errors[0], document, source))


def _describe(error: Any, document: dict[str, Any], source: str) -> str:
    """One line for a schema error: the file, the SLO (by name), the field and its value."""
    path = list(error.path)
    prefix = source
    if len(path) >= 2 and path[0] == "slos" and isinstance(path[1], int):
        prefix = f"{source}: slo {_slo_label(document['slos'][path[1]], path[1])}"
        path = path[2:]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return f"{prefix}: {_dotted([*path, missing])}: missing ({_EXPECTED.get(missing, '')})"
    if error.validator == "additionalProperties":
        where = _dotted(path) or ("top level" if prefix == source else "")
        return f"{prefix}: {where + ': ' if where else ''}{error.message}"
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    shown = repr(error.instance)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    rule = _EXPECTED.get(field, error.message)
    return f"{prefix}: {_dotted(path)}={shown}: {rule}"


def _slo_label(entry: Any, index: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and 0 < len(name) <= 128:
        return repr(name)
    return f"#{index + 1}"


def _dotted(path: list[Any]) -> str:
    """``['burn_alerts', 0, 'factor']`` -> ``burn_alerts[0].factor``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
