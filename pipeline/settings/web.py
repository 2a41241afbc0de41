"""The worker's HTTP ports (metrics, the /query endpoint) and the limits of one query."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pipeline.settings.env import enforce
from pipeline.settings.secret import SecretStr


@dataclass(frozen=True)
class WebOptions:
    """Ports, their bind addresses, the token and query limits (variable and default)."""

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


def check(s: WebOptions) -> None:
    """Positive query limits; a web port reachable beyond this machine needs a token."""
    guarded = is_loopback(s.web_bind) or bool(s.web_token.get_secret_value())
    enforce(
        s,
        [
            ("query_timeout_seconds", s.query_timeout_seconds > 0, "must be > 0"),
            ("query_max_rows", s.query_max_rows > 0, "must be > 0"),
            ("query_max_bytes", s.query_max_bytes > 0, "must be > 0"),
            ("query_max_memory_bytes", s.query_max_memory_bytes > 0, "must be > 0"),
            ("query_max_threads", s.query_max_threads > 0, "must be > 0"),
            (
                "web_token",
                guarded,
                f"must be set when SPANSTREAM_WEB_BIND={s.web_bind!r} is not a loopback address",
            ),
        ],
    )


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
