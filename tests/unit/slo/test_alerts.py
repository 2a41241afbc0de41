"""SLO burn alert messages: valid v1 alerts (kind slo_burn), stable ids, firing to resolved."""

from __future__ import annotations

from typing import Any

from pipeline.alerts import validate_message
from pipeline.commands.alerts import format_alert, read_alert
from pipeline.slo.alerts import advance, message, slo_alert_id
from pipeline.slo.burn import evaluate
from pipeline.slo.ledger import SliCount, SloState
from pipeline.slo.spec import BurnAlertRule, Slo

MIN = 60 * 1_000_000_000
RULE = BurnAlertRule("page", 300, 60, 10)
SLO = Slo("pay", "shop", ("POST /pay",), "availability", 99.0, burn_alerts=(RULE,))


def _burn(bad: int) -> Any:
    state = SloState.new(SLO, MIN)
    for i in range(5):
        state.add(SliCount("pay", "shop", "POST /pay", i * MIN, MIN, 100 - bad, 100, ("ab" * 16,)))
    return evaluate(SLO, state.fine, state.coarse, 4 * MIN, MIN), state


def test_a_firing_step_is_a_valid_v1_alert_with_the_slo_fields() -> None:
    burn, state = _burn(bad=20)
    assert burn.firing == ("page",)
    step = advance(state.episodes, "pay", "page", True, burn.window_start_ns)
    assert step is not None
    msg = message(burn, "page", step, burn.window_start_ns, state.exemplars)
    validate_message(msg)
    assert read_alert(__import__("json").dumps(msg).encode()) == msg
    assert msg["kind"] == "slo_burn" and msg["slo"] == "pay" and msg["severity"] == "critical"
    assert msg["burn_rates"] == {"1m": 20.0, "5m": 20.0}
    assert msg["alert_id"] == slo_alert_id("pay", "page", 4 * MIN)
    assert msg["exemplar_trace_ids"] == ["ab" * 16]
    assert msg["operation"] == "POST /pay"
    assert "SLO pay" in format_alert(msg)


def test_resolving_keeps_the_id_and_an_anomaly_alert_without_kind_still_validates() -> None:
    burn, _ = _burn(bad=0)
    episodes: dict[str, list[Any]] = {"page": ["0123456789abcdef", 0, 3]}
    step = advance(episodes, "pay", "page", False, burn.window_start_ns)
    assert step == ("0123456789abcdef", 4, "resolved") and episodes == {}
    msg = message(burn, "page", step, 0, [])
    validate_message(msg)
    assert msg["status"] == "resolved" and msg["budget_remaining"] == 1.0
    anomaly = {
        k: v
        for k, v in msg.items()
        if k not in ("kind", "slo", "burn_severity", "budget_remaining", "burn_rates")
    }
    validate_message(anomaly)  # fmt: skip
