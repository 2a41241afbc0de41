"""load_settings: every group's rules run once, and each refusal names its variable and value."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Settings, load_settings
from pipeline.settings.delivery import DeliveryOptions
from pipeline.settings.graph import GraphOptions
from pipeline.settings.incidents import IncidentOptions
from pipeline.settings.kafka import KafkaOptions
from pipeline.settings.limits import LimitOptions
from pipeline.settings.sampling import SamplingOptions
from pipeline.settings.slo import SloOptions
from pipeline.settings.store import StoreOptions
from pipeline.settings.streams import StreamOptions
from pipeline.settings.web import WebOptions
from pipeline.settings.windows import WindowOptions

GROUPS = (
    IncidentOptions,
    KafkaOptions,
    StoreOptions,
    StreamOptions,
    WindowOptions,
    SamplingOptions,
    LimitOptions,
    WebOptions,
    DeliveryOptions,
    SloOptions,
    GraphOptions,
)


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("WINDOW_SECONDS", "0", "SPANSTREAM_WINDOW_SECONDS=0: must be > 0"),
        ("ALLOWED_LATENESS_SECONDS", "-1", "SPANSTREAM_ALLOWED_LATENESS_SECONDS=-1: must be >= 0"),
        ("CUT_INTERVAL_SECONDS", "0", "SPANSTREAM_CUT_INTERVAL_SECONDS=0.0: must be > 0"),
        ("DECISION_WAIT_SECONDS", "0", "SPANSTREAM_DECISION_WAIT_SECONDS=0.0: must be > 0"),
        ("BASELINE_RATE", "1.5", r"SPANSTREAM_BASELINE_RATE=1.5: must be within \[0, 1\]"),
        ("FLUSH_INTERVAL_SECONDS", "0", "SPANSTREAM_FLUSH_INTERVAL_SECONDS=0.0: must be > 0"),
        ("BATCH_MAX_TRACES", "0", "SPANSTREAM_BATCH_MAX_TRACES=0: must be > 0"),
        ("MAX_BUFFERED_TRACES", "0", "SPANSTREAM_MAX_BUFFERED_TRACES=0: must be > 0"),
        ("MAX_SERVICES", "0", "SPANSTREAM_MAX_SERVICES=0: must be > 0"),
        ("MAX_OPERATIONS_PER_SERVICE", "0", "SPANSTREAM_MAX_OPERATIONS_PER_SERVICE=0: must be"),
        ("MAX_MESSAGE_BYTES", "0", "SPANSTREAM_MAX_MESSAGE_BYTES=0: must be > 0"),
        ("PARTIALS_PARTITIONS", "0", "SPANSTREAM_PARTIALS_PARTITIONS=0: must be > 0"),
        ("TTL_DAYS", "-1", "SPANSTREAM_TTL_DAYS=-1: must be >= 0"),
        ("QUERY_MAX_MEMORY_BYTES", "0", "SPANSTREAM_QUERY_MAX_MEMORY_BYTES=0: must be > 0"),
        ("METRICS_PORT", "x", "SPANSTREAM_METRICS_PORT='x': expected an integer"),
        ("BASELINE_RATE", "most", "SPANSTREAM_BASELINE_RATE='most': expected a number"),
        ("GRAPH_FLUSH_SECONDS", "0", "SPANSTREAM_GRAPH_FLUSH_SECONDS=0.0: must be > 0"),
        ("GRAPH_MAX_PEERS", "0", "SPANSTREAM_GRAPH_MAX_PEERS=0: must be > 0"),
        ("SERVICE_GRAPH", "maybe", "SPANSTREAM_SERVICE_GRAPH='maybe': expected true or false"),
    ],
)
def test_each_rule_names_the_variable_and_its_value(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_settings({f"SPANSTREAM_{variable}": raw})


def test_settings_hold_every_group_field_once() -> None:
    names = [f.name for f in fields(Settings)]
    assert len(names) == len(set(names))
    assert set(names) == {f.name for group in GROUPS for f in fields(group)}


def test_settings_are_frozen_and_overrides_win_over_the_environment() -> None:
    s = load_settings({"SPANSTREAM_WEB_PORT": "7000"}, web_port=7001, metrics_port=None)
    assert (s.web_port, s.metrics_port) == (7001, 9464)
    with pytest.raises(FrozenInstanceError):
        s.web_port = 1  # type: ignore[misc]


def test_a_secret_override_is_kept_secret() -> None:
    s = load_settings({}, web_token="hunter2")
    assert s.web_token.get_secret_value() == "hunter2" and "hunter2" not in repr(s)
