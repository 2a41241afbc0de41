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

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
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


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How Kafka clients authenticate and encrypt; the default is plaintext, no auth.

    >>> KafkaSecurity().uses_ssl, KafkaSecurity(protocol="SASL_SSL").uses_sasl
    (False, True)
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: SecretStr = field(default_factory=lambda: SecretStr(""))
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    key_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    check_hostname: bool = True

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


@dataclass(frozen=True)
class Settings:
    """All worker and CLI settings. Field docs give the environment variable and default."""

    #: SPANSTREAM_KAFKA: bootstrap servers of the Kafka cluster.
    kafka_bootstrap: str = DEFAULT_KAFKA
    #: SPANSTREAM_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL,
    #: for every Kafka client of the worker and the CLI (see :attr:`kafka_security`).
    kafka_security_protocol: str = "PLAINTEXT"
    #: SPANSTREAM_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only).
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    #: SPANSTREAM_KAFKA_SASL_USERNAME: the SASL principal (SASL_* only).
    kafka_sasl_username: str = ""
    #: SPANSTREAM_KAFKA_SASL_PASSWORD (or ``..._FILE``: a file holding it).
    kafka_sasl_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: SPANSTREAM_KAFKA_SSL_CA_FILE: PEM CA bundle the broker's certificate is checked
    #: against (SSL/SASL_SSL); empty: the system's CAs.
    kafka_ssl_ca_file: str = ""
    #: SPANSTREAM_KAFKA_SSL_CERT_FILE / SPANSTREAM_KAFKA_SSL_KEY_FILE: PEM client certificate
    #: and private key for mutual TLS; empty: no client certificate.
    kafka_ssl_cert_file: str = ""
    kafka_ssl_key_file: str = ""
    #: SPANSTREAM_KAFKA_SSL_KEY_PASSWORD (or ``..._FILE``): the client key's passphrase.
    kafka_ssl_key_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: SPANSTREAM_KAFKA_SSL_CHECK_HOSTNAME: the broker's certificate must name the host
    #: dialled; turn off only for brokers reached by an address their certificate lacks.
    kafka_ssl_check_hostname: bool = True
    #: SPANSTREAM_CLICKHOUSE: ``chdb:<dir>`` (embedded, default ``chdb:data/chdb``),
    #: ``clickhouse://user:pass@host:9000/db`` or ``clickhouses://`` for TLS.
    clickhouse_url: SecretStr = field(default_factory=lambda: SecretStr(DEFAULT_CLICKHOUSE))
    #: SPANSTREAM_CLICKHOUSE_PASSWORD (or ``..._FILE``: a file holding it): the ClickHouse
    #: password, kept out of the URL (and so out of ``ps``); not both.
    clickhouse_password: SecretStr = field(default_factory=lambda: SecretStr(""))
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
    #: SPANSTREAM_MAX_SERVICES: distinct services a worker aggregates by name (the first
    #: seen); spans of later new services count under ``__overflow__`` in RED windows,
    #: metric labels and sampling state (stored spans keep their name).
    max_services: int = 1_000
    #: SPANSTREAM_MAX_OPERATIONS_PER_SERVICE: distinct operations per service (the first
    #: seen); later new ones count as operation ``__overflow__``.
    max_operations_per_service: int = 500
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
    #: SPANSTREAM_METRICS_BIND: address the metrics port listens on (``0.0.0.0`` for a
    #: Prometheus on another host).
    metrics_bind: str = "127.0.0.1"
    #: SPANSTREAM_WEB_PORT: the worker's HTTP port (Faust web: read-only query endpoint).
    web_port: int = 6066
    #: SPANSTREAM_WEB_BIND: address the web port listens on; beyond loopback it needs
    #: SPANSTREAM_WEB_TOKEN.
    web_bind: str = "127.0.0.1"
    #: SPANSTREAM_WEB_TOKEN: bearer token every web request must carry (empty: none, which
    #: only a loopback SPANSTREAM_WEB_BIND allows). A secret: never logged.
    web_token: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: SPANSTREAM_QUERY_TIMEOUT_SECONDS: a /query statement is killed after this long.
    query_timeout_seconds: int = 30
    #: SPANSTREAM_QUERY_MAX_ROWS: a /query result larger than this is refused.
    query_max_rows: int = 100_000
    #: SPANSTREAM_QUERY_MAX_BYTES: ... or larger than this many (uncompressed) bytes.
    query_max_bytes: int = 50_000_000
    #: SPANSTREAM_QUERY_MAX_MEMORY_BYTES: memory one /query statement may use in ClickHouse.
    query_max_memory_bytes: int = 500_000_000
    #: SPANSTREAM_QUERY_MAX_THREADS: ClickHouse threads per /query statement (the other
    #: cores stay with ingestion).
    query_max_threads: int = 1

    @property
    def kafka_security(self) -> KafkaSecurity:
        """The security settings every Kafka client gets (see :mod:`pipeline.kafka_client`)."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password,
            ca_file=self.kafka_ssl_ca_file,
            cert_file=self.kafka_ssl_cert_file,
            key_file=self.kafka_ssl_key_file,
            key_password=self.kafka_ssl_key_password,
            check_hostname=self.kafka_ssl_check_hostname,
        )

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


_SECRET_FIELDS = {f.name for f in fields(Settings) if f.type in (SecretStr, "SecretStr")}


def env_name(field_name: str) -> str:
    """The environment variable for a settings field."""
    return _ENV_PREFIX + _ENV_NAMES.get(field_name, field_name.upper())


def _parse(name: str, raw: str, kind: Callable[[str], T], what: str) -> T:
    try:
        return kind(raw)
    except (ValueError, KeyError):
        raise ConfigError(f"{name}={raw!r}: expected {what}") from None


def _convert(field_type: Any, name: str, raw: str) -> Any:
    if field_type in (int, "int"):
        return _parse(name, raw, int, "an integer")
    if field_type in (float, "float"):
        return _parse(name, raw, float, "a number")
    if field_type in (bool, "bool"):
        return _parse(name, raw.strip().lower(), _BOOLS.__getitem__, "true or false")
    if field_type in (SecretStr, "SecretStr"):
        return SecretStr(raw)
    return raw


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _read_secret_file(name: str, path: str) -> SecretStr:
    """A secret from ``<NAME>_FILE`` (a mounted secret); one trailing newline is dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # The error names the file, never its content.
        raise ConfigError(
            f"{name}_FILE={path!r}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return SecretStr(text.removesuffix("\n").removesuffix("\r"))


def _secret_from_env(env: Mapping[str, str], name: str) -> SecretStr | None:
    if name + "_FILE" not in env:
        return SecretStr(env[name]) if name in env else None
    if name in env:
        raise ConfigError(f"{name} and {name}_FILE are both set: keep one")
    return _read_secret_file(name, env[name + "_FILE"])


def _validate(s: Settings) -> None:
    checks: list[tuple[str, bool, str]] = [
        ("window_seconds", s.window_seconds > 0, "must be > 0"),
        ("allowed_lateness_seconds", s.allowed_lateness_seconds >= 0, "must be >= 0"),
        ("decision_wait_seconds", s.decision_wait_seconds > 0, "must be > 0"),
        ("baseline_rate", 0.0 <= s.baseline_rate <= 1.0, "must be within [0, 1]"),
        ("max_message_bytes", s.max_message_bytes > 0, "must be > 0"),
        ("max_services", s.max_services > 0, "must be > 0"),
        ("max_operations_per_service", s.max_operations_per_service > 0, "must be > 0"),
        ("dlq_max_value_bytes", 0 <= s.dlq_max_value_bytes <= 900_000, "must be in [0, 900000]"),
        ("partials_partitions", s.partials_partitions > 0, "must be > 0"),
        ("cut_interval_seconds", s.cut_interval_seconds > 0, "must be > 0"),
        ("flush_interval_seconds", s.flush_interval_seconds > 0, "must be > 0"),
        ("batch_max_traces", s.batch_max_traces > 0, "must be > 0"),
        ("max_buffered_traces", s.max_buffered_traces > 0, "must be > 0"),
        ("ttl_days", s.ttl_days >= 0, "must be >= 0"),
        ("query_timeout_seconds", s.query_timeout_seconds > 0, "must be > 0"),
        ("query_max_rows", s.query_max_rows > 0, "must be > 0"),
        ("query_max_bytes", s.query_max_bytes > 0, "must be > 0"),
        ("query_max_memory_bytes", s.query_max_memory_bytes > 0, "must be > 0"),
        ("query_max_threads", s.query_max_threads > 0, "must be > 0"),
        (
            "web_token",
            is_loopback(s.web_bind) or bool(s.web_token.get_secret_value()),
            f"must be set when SPANSTREAM_WEB_BIND={s.web_bind!r} is not a loopback address",
        ),
    ]
    for field_name, ok, rule in checks:
        if not ok:
            value = getattr(s, field_name)
            shown = "''" if isinstance(value, SecretStr) else repr(value)  # never the secret
            raise ConfigError(f"{env_name(field_name)}={shown}: {rule}")
    _validate_kafka_security(s.kafka_security)


def _validate_kafka_security(k: KafkaSecurity) -> None:
    """Refuse settings that would silently connect with less security than asked for."""
    proto = env_name("kafka_security_protocol")
    if k.protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"{proto}={k.protocol!r}: one of {', '.join(SECURITY_PROTOCOLS)}")
    if k.sasl_mechanism not in SASL_MECHANISMS:
        name = env_name("kafka_sasl_mechanism")
        raise ConfigError(f"{name}={k.sasl_mechanism!r}: one of {', '.join(SASL_MECHANISMS)}")
    sasl = {"kafka_sasl_username": k.username, "kafka_sasl_password": k.password}
    ssl = {
        "kafka_ssl_ca_file": k.ca_file,
        "kafka_ssl_cert_file": k.cert_file,
        "kafka_ssl_key_file": k.key_file,
        "kafka_ssl_key_password": k.key_password,
    }
    for group, wanted, needs in ((sasl, k.uses_sasl, "SASL_"), (ssl, k.uses_ssl, "SSL")):
        for field_name, value in group.items():
            given = bool(value.get_secret_value() if isinstance(value, SecretStr) else value)
            if given and not wanted:
                raise ConfigError(
                    f"{env_name(field_name)} is set but {proto}={k.protocol!r} does not use "
                    f"it (set {proto} to a protocol with {needs})"
                )
            if k.uses_sasl and group is sasl and not given:
                raise ConfigError(f"{env_name(field_name)} is required with {proto}={k.protocol}")
    if bool(k.cert_file) != bool(k.key_file):
        raise ConfigError(
            f"{env_name('kafka_ssl_cert_file')} and {env_name('kafka_ssl_key_file')} "
            "go together (mutual TLS needs both)"
        )
    for field_name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file"):
        path = ssl[field_name]
        if isinstance(path, str) and path and not os.access(path, os.R_OK):
            raise ConfigError(f"{env_name(field_name)}={path!r}: no readable file there")
    if k.uses_ssl:
        # Load the files now: a wrong key passphrase is a setting error, not a client crash.
        from pipeline.kafka_client import ssl_context

        ssl_context(k)


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.5", "")]
    [True, True, True, False, False, False]
    """
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``), apply overrides (command-line
    options), validate.

    ``SPANSTREAM_CLICKHOUSE_PASSWORD`` is put into ``clickhouse_url`` (percent-encoded),
    so every store client gets it from one place. A password in the ``--url`` option is
    refused: any local user can read a command line (``ps``).
    """
    env = os.environ if environ is None else environ
    _refuse_password_in_argv(overrides.get("clickhouse_url"))
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = env_name(f.name)
        if f.type in (SecretStr, "SecretStr"):
            secret = _secret_from_env(env, name)
            if secret is not None:
                values[f.name] = secret
        elif name in env:
            values[f.name] = _convert(f.type, name, env[name])
    for key, value in overrides.items():
        if value is not None:
            wrap = key in _SECRET_FIELDS and not isinstance(value, SecretStr)
            values[key] = SecretStr(value) if wrap else value
    settings = _with_clickhouse_password(Settings(**values))
    _validate(settings)
    return settings


def _refuse_password_in_argv(url: SecretStr | str | None) -> None:
    from pipeline.store.url import has_password, mask_url

    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    if raw and has_password(raw):
        raise ConfigError(
            f"--url={mask_url(raw)!r}: a password on the command line is visible to every "
            "local user (ps); set SPANSTREAM_CLICKHOUSE_PASSWORD(_FILE) or SPANSTREAM_CLICKHOUSE"
        )


def _with_clickhouse_password(s: Settings) -> Settings:
    from pipeline.store.url import with_password

    password = s.clickhouse_password.get_secret_value()
    if not password:
        return s
    url = with_password(s.clickhouse_url.get_secret_value(), password)
    return replace(s, clickhouse_url=SecretStr(url))
