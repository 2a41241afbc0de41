"""SLO definitions: defaults, durations, and one clear error per bad file (table-driven)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.slo.spec import (
    DEFAULT_BURN_ALERTS,
    BurnAlertRule,
    format_duration,
    load_slos,
    parse_duration,
    parse_slos,
)

GOOD: dict[str, Any] = {
    "slos": [
        {"name": "checkout-avail", "service": "checkout", "sli": "availability", "objective": 99.9},
        {
            "name": "checkout-fast",
            "service": "checkout",
            "operations": ["POST /pay", "GET /cart"],
            "sli": "latency",
            "threshold_ms": 250,
            "objective": 99,
            "window_days": 7,
            "burn_alerts": [
                {"severity": "page", "long_window": "10m", "short_window": "1m", "factor": 10}
            ],
        },
    ]
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one field set (``slos.1.threshold_ms``); value ``...`` deletes it."""
    doc = copy.deepcopy(GOOD)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return doc


def test_a_good_file_gives_frozen_slos_with_defaults_and_overrides() -> None:
    slos = parse_slos(GOOD, "f.yaml")
    avail, fast = slos.slos
    assert (avail.window_days, avail.burn_alerts, avail.threshold_ns) == (
        30,
        DEFAULT_BURN_ALERTS,
        None,
    )
    assert fast.operations == ("POST /pay", "GET /cart")
    assert fast.threshold_ns == 250_000_000
    assert fast.burn_alerts == (BurnAlertRule("page", 600, 60, 10.0),)
    assert slos.thresholds_ns("checkout") == (250_000_000,)
    assert [s.name for s in slos.for_series("checkout", "GET /other")] == ["checkout-avail"]
    assert len(slos.for_series("checkout", "POST /pay")) == 2
    assert slos.for_series("cart", "POST /pay") == ()
    assert slos.longest_rule_window_seconds() == 3 * 86400


def test_the_defaults_are_the_sre_workbook_rules() -> None:
    table = [
        (r.severity, r.long_window_seconds, r.short_window_seconds, r.factor)
        for r in DEFAULT_BURN_ALERTS
    ]
    assert table == [
        ("page", 3600, 300, 14.4),
        ("page", 21600, 1800, 6.0),
        ("ticket", 86400, 7200, 3.0),
        ("ticket", 259200, 21600, 1.0),
    ]


def test_top_level_burn_alerts_apply_to_slos_without_their_own() -> None:
    doc = _with(
        "burn_alerts",
        [{"severity": "ticket", "long_window": 120, "short_window": "30s", "factor": 2}],
    )
    avail, fast = parse_slos(doc, "f.yaml").slos
    assert avail.burn_alerts == (BurnAlertRule("ticket", 120, 30, 2.0),)
    assert fast.burn_alerts == (BurnAlertRule("page", 600, 60, 10.0),)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("3d", 259200), (45, 45)]
)
def test_durations_round_trip(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "f.yaml: expected a mapping with a 'slos' list"),
        ({}, "f.yaml: slos: missing"),
        ({"slos": {}}, "f.yaml: slos={}: expected a list of SLOs"),
        ({"slos": [], "extra": 1}, "f.yaml: top level: Additional properties"),
        (
            _with("slos.0.objective", 100),
            "slo 'checkout-avail': objective=100: expected a percentage",
        ),
        (_with("slos.0.objective", "high"), "slo 'checkout-avail': objective='high'"),
        (_with("slos.0.objective", ...), "slo 'checkout-avail': objective: missing"),
        (
            _with("slos.0.sli", "speed"),
            "slo 'checkout-avail': sli='speed': expected 'availability' or 'latency'",
        ),
        (
            _with("slos.0.service", ""),
            "slo 'checkout-avail': service='': expected a non-empty string",
        ),
        (_with("slos.0.window_days", 0), "slo 'checkout-avail': window_days=0"),
        (
            _with("slos.0.threshold_ms", 10),
            "slo 'checkout-avail': threshold_ms=10: only for a latency SLI",
        ),
        (
            _with("slos.1.threshold_ms", ...),
            "slo 'checkout-fast': threshold_ms: required for a latency SLI",
        ),
        (
            _with("slos.1.threshold_ms", -5),
            "slo 'checkout-fast': threshold_ms=-5: expected a number",
        ),
        (_with("slos.1.operations", ["a", "a"]), "slo 'checkout-fast': operations=['a', 'a']"),
        (_with("slos.1.name", "checkout-avail"), "slo 'checkout-avail': name: defined twice"),
        (_with("slos.1.name", 7), "slo #2: name=7: expected letters"),
        (_with("slos.1.name", "bad name!"), "slo 'bad name!': name='bad name!': expected letters"),
        (
            _with("slos.1.colour", "red"),
            "slo 'checkout-fast': Additional properties are not allowed ('colour'",
        ),
        (
            _with("slos.1.burn_alerts.0.factor", 0),
            "slo 'checkout-fast': burn_alerts[0].factor=0: expected a number > 0",
        ),
        (
            _with("slos.1.burn_alerts.0.severity", "sms"),
            "slo 'checkout-fast': burn_alerts[0].severity='sms': expected 'page' or 'ticket'",
        ),
        (
            _with("slos.1.burn_alerts.0.long_window", "1 hour"),
            "slo 'checkout-fast': burn_alerts[0].long_window='1 hour': expected a duration",
        ),
        (
            _with("slos.1.burn_alerts.0.short_window", "10m"),
            "slo 'checkout-fast': burn_alerts[0].short_window='10m': must be shorter than",
        ),
        (
            _with("slos.1.burn_alerts", []),
            "slo 'checkout-fast': burn_alerts=[]: expected a list of 1 to 16",
        ),
        (
            _with("burn_alerts", [{"severity": "page", "long_window": "1h", "short_window": "5m"}]),
            "f.yaml: burn_alerts[0].factor: missing",
        ),
    ],
)
def test_a_bad_file_raises_one_line_naming_the_slo_and_field(doc: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_slos(doc, "f.yaml")
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_load_reads_yaml_and_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "slos.yaml"
    good.write_text(
        "slos:\n  - name: a\n    service: s\n    sli: latency\n"
        "    threshold_ms: 300\n    objective: 99.5\n"
    )
    assert load_slos(good).slos[0].threshold_ms == 300.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("slos: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML"):
        load_slos(bad)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"bin.yaml"):
        load_slos(binary)
    with pytest.raises(ConfigError, match=r"cannot read SLO file"):
        load_slos(tmp_path / "missing.yaml")


def test_the_demo_slo_file_is_valid() -> None:
    demo = Path(__file__).resolve().parents[3] / "infra" / "slo" / "demo-slos.yaml"
    slos = load_slos(demo)
    assert [s.name for s in slos.slos] == ["payment-availability", "checkout-latency"]
