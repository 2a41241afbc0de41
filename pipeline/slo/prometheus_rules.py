"""Prometheus recording and alerting rules for an SLO file, on the spanmetrics metrics.

For teams that alert from Prometheus: the same SLOs and burn-rate rules as the
worker's own SLO alerts, computed by Prometheus from the spanmetrics every worker
exports (:mod:`pipeline.spanmetrics`; the Collector's spanmetrics connector makes
the same series, so the rules work on either).

Per SLO, one rule group ``slo:<name>``:

* a recording rule ``slo:sli_error:ratio_rate<W>`` for every window ``W`` its burn
  alerts use: the share of bad requests over ``W``. Availability: calls with
  ``status_code="STATUS_CODE_ERROR"`` over all calls. Latency: 1 minus the share of
  calls in the ``le`` bucket of the threshold (which must be a bucket bound);
* an alert ``SloErrorBudgetBurn`` per burn rule: the burn rate (error ratio / error
  budget) above the rule's factor over both its long and its short window (Google SRE
  workbook, multiwindow multi-burn-rate alerts). ``$value`` is the long window's burn
  rate; its labels are the series' (``slo``, ``service``, ``sli``) plus ``severity``,
  ``long_window`` and ``short_window``.

The error of an availability SLI here is the span status only: the worker also
counts a server span answering HTTP 5xx as an error, which the spanmetrics labels
cannot tell.

>>> from pipeline.slo.spec import parse_slos
>>> slos = parse_slos({"slos": [{"name": "cart", "service": "cart", "sli": "availability",
...                              "objective": 99.9}]}, "slos.yaml")
>>> group = rule_groups(slos)[0]
>>> group["name"], [r.get("record") or r["alert"] for r in group["rules"]][:2]
('slo:cart', ['slo:sli_error:ratio_rate5m', 'slo:sli_error:ratio_rate30m'])
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import yaml

from pipeline.errors import ConfigError
from pipeline.printable import printable
from pipeline.slo.spec import BurnAlertRule, Slo, SloSet, format_duration
from pipeline.spanmetrics.counts import BUCKETS_MS
from pipeline.spanmetrics.exposition import CALLS, DURATION

ALERT: Final = "SloErrorBudgetBurn"
ERROR_STATUS: Final = "STATUS_CODE_ERROR"


def record_name(window_seconds: int) -> str:
    """The recording rule of the error ratio over a window.

    >>> record_name(300), record_name(86400)
    ('slo:sli_error:ratio_rate5m', 'slo:sli_error:ratio_rate1d')
    """
    return f"slo:sli_error:ratio_rate{format_duration(window_seconds)}"


def promql_string(text: str) -> str:
    r"""A PromQL double-quoted string literal of ``text``.

    >>> print(promql_string('a"b\\c'))
    "a\"b\\c"
    """
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def regex_literal(text: str) -> str:
    r"""An RE2 pattern matching exactly ``text``: ASCII punctuation escaped.

    >>> print(regex_literal("GET /c/{id}"))
    GET\ /c/\{id\}
    """
    return "".join("\\" + c if c.isascii() and not c.isalnum() and c != "/" else c for c in text)


def decimal_text(value: float) -> str:
    """``value`` as plain decimal text, exact for what a person typed (no float noise).

    >>> decimal_text(1 - 99.9 / 100), decimal_text(0.01), decimal_text(14.4)
    ('0.001', '0.01', '14.4')
    """
    return format(Decimal(repr(round(value, 12))).normalize(), "f")


def error_budget_text(slo: Slo) -> str:
    """The error budget, from the objective as written.

    >>> from pipeline.slo.spec import Slo
    >>> error_budget_text(Slo("x", "s", (), "availability", 99.95))
    '0.0005'
    """
    budget = (Decimal(100) - Decimal(repr(slo.objective))) / Decimal(100)
    return format(budget.normalize(), "f")


def selector(slo: Slo, *extra: str) -> str:
    r"""The label matchers of an SLO's requests, plus ``extra`` ones.

    >>> from pipeline.slo.spec import Slo
    >>> print(selector(Slo("x", "cart", ("GET /a.b", "POST /"), "availability", 99)))
    {service_name="cart",span_name=~"GET\\ /a\\.b|POST\\ /"}
    """
    matchers = [f"service_name={promql_string(slo.service)}"]
    if len(slo.operations) == 1:
        matchers.append(f"span_name={promql_string(slo.operations[0])}")
    elif slo.operations:
        pattern = "|".join(regex_literal(op) for op in slo.operations)
        matchers.append(f"span_name=~{promql_string(pattern)}")
    return "{" + ",".join([*matchers, *extra]) + "}"


def le_matcher(threshold_ms: float, bounds_ms: Sequence[float]) -> str:
    r"""The ``le`` matcher of a threshold's bucket, both as scraped and as Prometheus 3 stores it.

    >>> print(le_matcher(300, [100, 300]))
    le=~"300(\\.0)?"
    """
    if threshold_ms not in bounds_ms:
        raise ValueError(threshold_ms)
    text = decimal_text(threshold_ms)
    return "le=~" + promql_string(text + "(\\.0)?" if "." not in text else text)


def error_ratio(slo: Slo, window_seconds: int, bounds_ms: Sequence[float]) -> str:
    """PromQL of the share of bad requests over the window."""
    w = format_duration(window_seconds)
    if slo.sli == "availability":
        errors = selector(slo, f"status_code={promql_string(ERROR_STATUS)}")
        return (
            f"(sum(rate({CALLS}_total{errors}[{w}])) or vector(0))\n"
            f"/\nsum(rate({CALLS}_total{selector(slo)}[{w}]))"
        )
    assert slo.threshold_ms is not None
    good = selector(slo, le_matcher(slo.threshold_ms, bounds_ms))
    return (
        f"1 - (\n  sum(rate({DURATION}_bucket{good}[{w}]))\n  /\n"
        f"  sum(rate({DURATION}_count{selector(slo)}[{w}]))\n)"
    )


def _labels(slo: Slo) -> dict[str, str]:
    return {"slo": slo.name, "service": slo.service, "sli": slo.sli}


def alert_rule(slo: Slo, rule: BurnAlertRule) -> dict[str, Any]:
    """The alerting rule of one burn rule of an SLO.

    Prometheus expands templates in an alerting rule's labels and annotations, so of
    the SLO file's text only the SLO name goes into them (the schema allows no brace in
    it; it makes the rule distinct from other SLOs' for promtool's duplicate check):
    ``service`` and ``sli`` come with the recorded series, and the annotations name
    them as ``$labels`` (values, never parsed as templates).
    """
    if "{" in slo.name or "}" in slo.name:
        raise ConfigError(f"slo {slo.name!r}: name: no braces in a name")
    budget = error_budget_text(slo)
    factor = decimal_text(rule.factor)
    long_w, short_w = (
        format_duration(s) for s in (rule.long_window_seconds, rule.short_window_seconds)
    )
    match = "{slo=" + promql_string(slo.name) + "}"
    expr = (
        f"({record_name(rule.long_window_seconds)}{match} / {budget}) > {factor}\n"
        f"and\n({record_name(rule.short_window_seconds)}{match} / {budget}) > {factor}"
    )
    spent = 100 * rule.factor * rule.long_window_seconds / slo.window_seconds
    return {
        "alert": ALERT,
        "expr": _Block(expr),
        "labels": {
            "slo": slo.name,
            "severity": rule.severity,
            "long_window": long_w,
            "short_window": short_w,
        },
        "annotations": {
            "summary": (
                "SLO {{ $labels.slo }}: error budget burning at"
                f' {{{{ $value | printf "%.1f" }}}}x over {long_w}'
                f" (alert above {factor}x over {long_w} and {short_w})"
            ),
            "description": (
                f"{{{{ $labels.service }}}}: {slo.sli} objective {decimal_text(slo.objective)}%"
                f" over {slo.window_days}d (error budget {budget}). At {factor}x,"
                f" {spent:.3g}% of the budget is spent in {long_w}."
            ),
        },
    }


def _check_threshold(slo: Slo, bounds_ms: Sequence[float], source: str) -> None:
    if slo.sli == "latency" and slo.threshold_ms not in bounds_ms:
        shown = ", ".join(decimal_text(b) for b in bounds_ms)
        raise ConfigError(
            f"{source}: slo {slo.name!r}: threshold_ms={decimal_text(slo.threshold_ms or 0)}: "
            f"Prometheus counts only at a bucket bound of {DURATION} ({shown})"
        )


def rule_groups(slos: SloSet, bounds_ms: Sequence[float] = BUCKETS_MS) -> list[dict[str, Any]]:
    """One rule group per SLO: its error ratios over every window, then its alerts.

    Raises :class:`ConfigError` for a latency threshold that is not a bucket bound.
    """
    groups = []
    for slo in slos.slos:
        _check_threshold(slo, bounds_ms, slos.source or "slo file")
        windows = sorted(
            {w for r in slo.burn_alerts for w in (r.long_window_seconds, r.short_window_seconds)}
        )
        records: list[dict[str, Any]] = [
            {
                "record": record_name(w),
                "expr": _Block(error_ratio(slo, w, bounds_ms)),
                "labels": _labels(slo),
            }
            for w in windows
        ]
        alerts = [alert_rule(slo, rule) for rule in slo.burn_alerts]
        groups.append({"name": f"slo:{slo.name}", "rules": records + alerts})
    return groups


def render_rules(slos: SloSet, bounds_ms: Sequence[float] = BUCKETS_MS) -> str:
    """The rule file (YAML) for ``slos``: what ``spanstream slo rules`` writes."""
    header = (
        f"# Generated by `spanstream slo rules` from {printable(slos.source or 'an SLO file')}:"
        " edit the SLO file, not this one.\n"
        f"# Reads {CALLS}_total and {DURATION}_* (spanstream workers or the"
        " Collector's spanmetrics connector).\n"
    )
    body = yaml.dump(
        {"groups": rule_groups(slos, bounds_ms)},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )
    return header + body


class _Block(str):
    """A string written as a YAML literal block (multi-line PromQL stays readable)."""


class _Dumper(yaml.SafeDumper):
    pass


def _block(dumper: yaml.SafeDumper, value: _Block) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_Dumper.add_representer(_Block, _block)
