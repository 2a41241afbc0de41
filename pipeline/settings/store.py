"""ClickHouse settings: where spans and windows are stored, the password, the retention.

The password never travels on the command line: ``--url`` with one is refused, and
``SPANSTREAM_CLICKHOUSE_PASSWORD`` is put into the URL here, so every store client
gets it from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeVar

from pipeline.errors import ConfigError
from pipeline.settings.env import enforce
from pipeline.settings.secret import SecretStr

DEFAULT_CLICKHOUSE = "chdb:data/chdb"

S = TypeVar("S", bound="StoreOptions")


@dataclass(frozen=True)
class StoreOptions:
    """The ClickHouse store (environment variable and default)."""

    #: SPANSTREAM_CLICKHOUSE: ``chdb:<dir>`` (embedded, default ``chdb:data/chdb``),
    #: ``clickhouse://user:pass@host:9000/db`` or ``clickhouses://`` for TLS.
    clickhouse_url: SecretStr = field(default_factory=lambda: SecretStr(DEFAULT_CLICKHOUSE))
    #: SPANSTREAM_CLICKHOUSE_PASSWORD (or ``..._FILE``: a file holding it): the ClickHouse
    #: password, kept out of the URL (and so out of ``ps``); not both.
    clickhouse_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: SPANSTREAM_TTL_DAYS: otel_traces retention in days; 0 keeps data forever.
    ttl_days: int = 0


def check(s: StoreOptions) -> None:
    """Refuse a negative retention."""
    enforce(s, [("ttl_days", s.ttl_days >= 0, "must be >= 0")])


def refuse_password_in_argv(url: SecretStr | str | None) -> None:
    """Refuse a ``--url`` that carries a password: any local user can read a command line."""
    from pipeline.store.url import has_password, mask_url

    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    if raw and has_password(raw):
        raise ConfigError(
            f"--url={mask_url(raw)!r}: a password on the command line is visible to every "
            "local user (ps); set SPANSTREAM_CLICKHOUSE_PASSWORD(_FILE) or SPANSTREAM_CLICKHOUSE"
        )


def with_clickhouse_password(s: S) -> S:
    """``s`` with ``clickhouse_password`` put into ``clickhouse_url`` (percent-encoded)."""
    from pipeline.store.url import with_password

    password = s.clickhouse_password.get_secret_value()
    if not password:
        return s
    url = with_password(s.clickhouse_url.get_secret_value(), password)
    return replace(s, clickhouse_url=SecretStr(url))
