"""Typed, frozen settings read once at start from ``SPANSTREAM_*`` environment variables.

Every option is documented here with its default; :func:`load_settings`
validates them all and raises :class:`~pipeline.errors.ConfigError` naming the
offending variable and value.

>>> s = load_settings({"SPANSTREAM_WINDOW_SECONDS": "30"})
>>> s.window_seconds, s.kafka_bootstrap
(30, '127.0.0.1:9092')
>>> load_settings({"SPANSTREAM_WINDOW_SECONDS": "soon"})
Traceback (most recent call last):
...
pipeline.errors.ConfigError: SPANSTREAM_WINDOW_SECONDS='soon': expected an integer
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from pipeline.errors import ConfigError

T = TypeVar("T")

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_CLICKHOUSE = "chdb:data/chdb"


class SecretStr:
    """A string that never shows itself in ``repr``/``str`` (logs, tracebacks).

    >>> SecretStr("hunter2")
    SecretStr('**********')
    >>> SecretStr("hunter2").get_secret_value()
    'hunter2'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """All worker and CLI settings. Field docs give the environment variable and default."""

    #: SPANSTREAM_KAFKA: bootstrap servers of the Kafka cluster.
    kafka_bootstrap: str = DEFAULT_KAFKA
    #: SPANSTREAM_CLICKHOUSE: ``chdb:<dir>`` (embedded, default ``chdb:data/chdb``),
    #: ``clickhouse://user:pass@host:9000/db`` or ``clickhouses://`` for TLS.
    clickhouse_url: SecretStr = field(default_factory=lambda: SecretStr(DEFAULT_CLICKHOUSE))
    #: SPANSTREAM_INPUT_TOPIC: where the Collector's kafka exporter writes (its default name).
    input_topic: str = "otlp_spans"
    #: SPANSTREAM_DLQ_TOPIC: undecodable records, with the error in headers.
    dlq_topic: str = "spanstream-dlq"
    #: SPANSTREAM_ALERT_TOPIC: JSON alerts keyed by service.
    alert_topic: str = "spanstream-alerts"
    #: SPANSTREAM_PARTIALS_TOPIC: per-partition window partials, keyed by (service, operation).
    partials_topic: str = "spanstream-partials"
    #: SPANSTREAM_PARTIALS_PARTITIONS: partitions of the partials topic and of the window tables.
    partials_partitions: int = 6
    #: SPANSTREAM_GROUP: consumer group of the input topic; workers in one group share its
    #: partitions. The window stage (Faust) uses ``<group>-windows``.
    group: str = "spanstream"
    #: SPANSTREAM_WINDOW_SECONDS: tumbling window size for RED metrics.
    window_seconds: int = 60
    #: SPANSTREAM_ALLOWED_LATENESS_SECONDS: a window closes this long after its end.
    allowed_lateness_seconds: int = 30
    #: SPANSTREAM_DECISION_WAIT_SECONDS: tail-sampling waits this long after a trace's last span.
    decision_wait_seconds: float = 5.0
    #: SPANSTREAM_BASELINE_RATE: share of otherwise-unremarkable traces kept (0..1).
    baseline_rate: float = 0.05
    #: SPANSTREAM_CUT_INTERVAL_SECONDS: how often window partials are sent per input partition.
    cut_interval_seconds: float = 1.0
    #: SPANSTREAM_FLUSH_INTERVAL_SECONDS: kept spans are inserted at least this often.
    flush_interval_seconds: float = 1.0
    #: SPANSTREAM_BATCH_MAX_TRACES: or sooner, once this many kept traces are pending.
    batch_max_traces: int = 2000
    #: SPANSTREAM_MAX_BUFFERED_TRACES: fetching pauses while this many traces await a
    #: sampling decision or their insert (bounds memory on a backlog or a store outage).
    #: The Collector's tail-sampling ``num_traces`` default; a backlog is read at most
    #: this many traces per decision wait (10,000 capped one worker at ~41k spans/s).
    max_buffered_traces: int = 50_000
    #: SPANSTREAM_MAX_MESSAGE_BYTES: larger records go to the DLQ undecoded.
    max_message_bytes: int = 4_000_000
    #: SPANSTREAM_DLQ_MAX_VALUE_BYTES: a dead-lettered value longer than this goes to the
    #: DLQ cut to this many bytes, with its size and SHA-256 in headers (the whole record
    #: stays in the input topic at the offset named there). Keep it well under the DLQ
    #: producer's ``message.max.bytes`` (1 MB) and the topic's ``max.message.bytes``.
    dlq_max_value_bytes: int = 524_288
    #: SPANSTREAM_TTL_DAYS: otel_traces retention in days; 0 keeps data forever.
    ttl_days: int = 0
    #: SPANSTREAM_METRICS_PORT: Prometheus metrics port of a worker (0 disables).
    metrics_port: int = 9464
    #: SPANSTREAM_WEB_PORT: the worker's HTTP port (Faust web: read-only query endpoint).
    web_port: int = 6066

    @property
    def windows_app_id(self) -> str:
        """The Faust app id (and consumer group) of the window stage."""
        return f"{self.group}-windows"

    @property
    def windows_changelog_topic(self) -> str:
        """Changelog of the window stage's ``windows`` table (Faust's naming)."""
        return f"{self.windows_app_id}-windows-changelog"

    @property
    def detectors_changelog_topic(self) -> str:
        """Changelog of the window stage's ``detectors`` table (Faust's naming)."""
        return f"{self.windows_app_id}-detectors-changelog"


_ENV_PREFIX = "SPANSTREAM_"
_ENV_NAMES = {
    "kafka_bootstrap": "KAFKA",
    "clickhouse_url": "CLICKHOUSE",
    "input_topic": "INPUT_TOPIC",
    "dlq_topic": "DLQ_TOPIC",
    "alert_topic": "ALERT_TOPIC",
    "group": "GROUP",
    "partials_topic": "PARTIALS_TOPIC",
}


def env_name(field_name: str) -> str:
    """The environment variable for a settings field."""
    return _ENV_PREFIX + _ENV_NAMES.get(field_name, field_name.upper())


def _parse(name: str, raw: str, kind: Callable[[str], T], what: str) -> T:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected {what}") from None


def _convert(field_type: Any, name: str, raw: str) -> Any:
    if field_type in (int, "int"):
        return _parse(name, raw, int, "an integer")
    if field_type in (float, "float"):
        return _parse(name, raw, float, "a number")
    if field_type in (SecretStr, "SecretStr"):
        return SecretStr(raw)
    return raw


def _validate(s: Settings) -> None:
    checks: list[tuple[str, bool, str]] = [
        ("window_seconds", s.window_seconds > 0, "must be > 0"),
        ("allowed_lateness_seconds", s.allowed_lateness_seconds >= 0, "must be >= 0"),
        ("decision_wait_seconds", s.decision_wait_seconds > 0, "must be > 0"),
        ("baseline_rate", 0.0 <= s.baseline_rate <= 1.0, "must be within [0, 1]"),
        ("max_message_bytes", s.max_message_bytes > 0, "must be > 0"),
        ("dlq_max_value_bytes", 0 <= s.dlq_max_value_bytes <= 900_000, "must be in [0, 900000]"),
        ("partials_partitions", s.partials_partitions > 0, "must be > 0"),
        ("cut_interval_seconds", s.cut_interval_seconds > 0, "must be > 0"),
        ("flush_interval_seconds", s.flush_interval_seconds > 0, "must be > 0"),
        ("batch_max_traces", s.batch_max_traces > 0, "must be > 0"),
        ("max_buffered_traces", s.max_buffered_traces > 0, "must be > 0"),
        ("ttl_days", s.ttl_days >= 0, "must be >= 0"),
    ]
    for field_name, ok, rule in checks:
        if not ok:
            value = getattr(s, field_name)
            raise ConfigError(f"{env_name(field_name)}={value!r}: {rule}")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``), apply overrides, validate."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = env_name(f.name)
        if name in env:
            values[f.name] = _convert(f.type, name, env[name])
    for key, value in overrides.items():
        if value is not None:
            values[key] = SecretStr(value) if key == "clickhouse_url" else value
    settings = Settings(**values)
    _validate(settings)
    return settings
