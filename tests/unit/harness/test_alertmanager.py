"""The test config is the documented one with only receiver URLs and group delays changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.harness.alertmanager import EXAMPLE_CONFIG, EXAMPLE_RECEIVER_BASE, local_config


def _without_delays(route: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in route.items() if k not in ("group_wait", "group_interval")}
    if "routes" in kept:
        kept["routes"] = [_without_delays(r) for r in kept["routes"]]
    return kept


def test_local_config_changes_receivers_and_delays_only(tmp_path: Path) -> None:
    documented = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    local = yaml.safe_load(
        local_config(EXAMPLE_CONFIG, "http://127.0.0.1:5", tmp_path / "a.yml").read_text()
    )
    assert EXAMPLE_RECEIVER_BASE in EXAMPLE_CONFIG.read_text()
    assert EXAMPLE_RECEIVER_BASE not in (tmp_path / "a.yml").read_text()
    assert local["inhibit_rules"] == documented["inhibit_rules"]
    assert _without_delays(local["route"]) == _without_delays(documented["route"])
    spanstream = local["route"]["routes"][0]
    assert (spanstream["group_wait"], spanstream["group_interval"]) == ("1s", "1s")
    urls = [c["url"] for r in local["receivers"] for c in r.get("webhook_configs", [])]
    assert urls == ["http://127.0.0.1:5/pager", "http://127.0.0.1:5/tickets"]
