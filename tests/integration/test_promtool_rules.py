"""The real ``promtool`` on the rules ``spanstream slo rules`` writes.

``promtool check rules`` accepts them (and ``check config`` the shipped
``infra/prometheus/prometheus.yml``), and ``promtool test rules`` evaluates them on
spanmetrics series: a burst of errors (or slow requests) burning the budget at ~15x
fires the 1h/5m page (and the tickets whose windows it fills), one at ~2x fires
nothing. Series are 1-minute samples: 2 healthy hours, then the burst for 1 hour.

Needs promtool (``infra/prometheus/build.sh``, run by bootstrap): under ``CI=true``
a missing binary fails the tests, elsewhere it skips them with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.slo.prometheus_rules import ALERT, render_rules, rule_groups
from pipeline.slo.spec import SloSet, parse_slos
from tests.harness.promtool import require_promtool, run_promtool
from tests.unit.slo.examples import AVAIL, FAST

pytestmark = pytest.mark.integration

PROMETHEUS_CONFIG = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "prometheus.yml"

#: Calls per minute; healthy for 120 minutes, then the burst for 60.
RATE, HEALTHY, BURST = 1000, 120, 60
#: A burst burning ~15x the budget: the 1h and 5m windows are above 14.4x; the 6h window
#: (3 hours of data) is at 5x, under 6x; the 1d/2h ticket (5x, 7.6x > 3x) and the
#: 3d/6h ticket (5x > 1x) fire too.
FIRING_AT_15X = [("page", "1h", "5m", "15.0"), ("ticket", "1d", "2h", "5.0"),
                 ("ticket", "3d", "6h", "5.0")]  # fmt: skip


@pytest.fixture(scope="module")
def promtool() -> Path:
    return require_promtool()


def slo_set(*entries: dict[str, Any]) -> SloSet:
    return parse_slos({"slos": list(entries)}, "slos.yaml")


def write_rules(tmp_path: Path, slos: SloSet) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(render_rules(slos))
    return path


def labels(service: str, **extra: str) -> str:
    pairs = {"service_name": service, "span_kind": "SPAN_KIND_SERVER", **extra}
    return ",".join(f'{k}="{v}"' for k, v in pairs.items())


def counter(start: int, per_minute: int, minutes: int) -> str:
    """promtool's expanding notation: ``minutes`` more samples after ``start``."""
    return f"{start}+{per_minute}x{minutes}"


def error_series(bad_per_minute: int) -> list[dict[str, str]]:
    """Calls of cart, ``bad_per_minute`` of each 1000 in error during the burst."""
    ok_end = RATE * HEALTHY
    good = RATE - bad_per_minute
    name = "traces_span_metrics_calls_total"
    unset = labels("cart", span_name="GET /", status_code="STATUS_CODE_UNSET")
    error = labels("cart", span_name="GET /", status_code="STATUS_CODE_ERROR")
    return [
        {"series": f"{name}{{{unset}}}",
         "values": f"{counter(0, RATE, HEALTHY)} {counter(ok_end + good, good, BURST - 1)}"},
        {"series": f"{name}{{{error}}}",
         "values": f"0x{HEALTHY} {counter(bad_per_minute, bad_per_minute, BURST - 1)}"},
    ]  # fmt: skip


def latency_series(slow_per_minute: int, le: str) -> list[dict[str, str]]:
    """Durations of checkout POST /pay: ``slow_per_minute`` of 1000 above 400 ms in the burst."""
    fast = RATE - slow_per_minute
    base = labels("checkout", span_name="POST /pay", status_code="STATUS_CODE_UNSET")
    name = "traces_span_metrics_duration_milliseconds"
    return [
        {"series": f"{name}_count{{{base}}}", "values": counter(0, RATE, HEALTHY + BURST)},
        {"series": f'{name}_bucket{{{base},le="{le}"}}',
         "values": f"{counter(0, RATE, HEALTHY)} "
                   f"{counter(RATE * HEALTHY + fast, fast, BURST - 1)}"},
    ]  # fmt: skip


def expected_alerts(slos: SloSet, firing: list[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
    """The alerts promtool must report: labels, and annotations with ``$value`` filled in."""
    (group,) = rule_groups(slos)
    out = []
    for severity, long_w, short_w, value in firing:
        (rule,) = (
            r
            for r in group["rules"]
            if r.get("alert") == ALERT
            and (r["labels"]["severity"], r["labels"]["long_window"], r["labels"]["short_window"])
            == (severity, long_w, short_w)
        )
        series = next(r["labels"] for r in group["rules"] if "record" in r)
        fills = {"$value | printf \"%.1f\"": value, "$labels.slo": series["slo"],
                 "$labels.service": series["service"]}  # fmt: skip
        annotations = {}
        for name, text in rule["annotations"].items():
            for template, filled in fills.items():
                text = text.replace("{{ " + template + " }}", filled)
            annotations[name] = text
        out.append({"exp_labels": {**series, **rule["labels"]}, "exp_annotations": annotations})
    return out


def run_test(
    promtool: Path, tmp_path: Path, slos: SloSet, series: list[dict[str, str]], alerts: Any
) -> None:
    rules = write_rules(tmp_path, slos)
    tests = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": f"{HEALTHY}m", "alertname": ALERT, "exp_alerts": []},
                    {"eval_time": f"{HEALTHY + BURST}m", "alertname": ALERT, "exp_alerts": alerts},
                ],
            }
        ],
    }
    test_file = tmp_path / "rules_test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run_promtool(promtool, "test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_check_rules_accepts_every_generated_rule(promtool: Path, tmp_path: Path) -> None:
    own = [{"severity": "page", "long_window": "90m", "short_window": "90s", "factor": 20}]
    slos = slo_set(AVAIL, FAST, {**AVAIL, "name": "odd", "operations": ["GET /c/{id}", "a|b"],
                                 "burn_alerts": own})  # fmt: skip
    result = run_promtool(
        promtool, "check", "rules", "--lint-fatal", str(write_rules(tmp_path, slos))
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in rule_groups(slos))
    assert count == 2 * (7 + 4) + 3
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_the_shipped_prometheus_config_is_valid(promtool: Path) -> None:
    result = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_error_burst_at_15x_pages(promtool: Path, tmp_path: Path) -> None:
    slos = slo_set(AVAIL)
    run_test(promtool, tmp_path, slos, error_series(15), expected_alerts(slos, FIRING_AT_15X))


def test_an_error_burst_at_2x_fires_nothing(promtool: Path, tmp_path: Path) -> None:
    run_test(promtool, tmp_path, slo_set(AVAIL), error_series(2), [])


def test_the_2x_case_is_not_vacuous_an_unexpected_alert_fails_the_rule_test(
    promtool: Path, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="FAILED"):
        run_test(promtool, tmp_path, slo_set(AVAIL), error_series(15), [])


def test_a_slow_burst_at_15x_pages_with_prometheus_3_le_labels(
    promtool: Path, tmp_path: Path
) -> None:
    slos = slo_set(FAST)
    series = latency_series(150, le="400.0")  # 15% slow, budget 1%
    run_test(promtool, tmp_path, slos, series, expected_alerts(slos, FIRING_AT_15X))


def test_a_slow_burst_at_2x_fires_nothing_with_scraped_le_labels(
    promtool: Path, tmp_path: Path
) -> None:
    run_test(promtool, tmp_path, slo_set(FAST), latency_series(20, le="400"), [])
