"""Parse ``SPANSTREAM_CLICKHOUSE`` URLs into backend targets, masking passwords in errors.

Accepted forms:

* ``chdb:<dir>`` (relative to the working directory) or ``chdb:///abs/dir``:
  embedded chdb on that directory; ``?database=name`` selects a database.
* ``clickhouse://user:pass@host:9000/db``: a server over the native protocol;
  ``clickhouses://`` adds TLS (default port 9440). Other query parameters are
  passed to clickhouse-driver (connection options and server settings).

>>> parse_store_url("chdb:data/chdb")
ChdbTarget(path='data/chdb', database=None)
>>> parse_store_url("clickhouse://bob:s3cret@db.local/traces").display
'clickhouse://bob:***@db.local:9000/traces'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pipeline.errors import ConfigError
from pipeline.settings import SecretStr

NATIVE_SCHEMES = {"clickhouse": 9000, "clickhouses": 9440}


@dataclass(frozen=True)
class ChdbTarget:
    """An embedded chdb directory and optional database."""

    path: str
    database: str | None = None


@dataclass(frozen=True)
class NativeTarget:
    """A ClickHouse server reached with clickhouse-driver."""

    url: str = field(repr=False)
    display: str
    host: str
    port: int
    database: str
    secure: bool


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``.

    >>> mask_url("clickhouse://u:pw@h:9000/db")
    'clickhouse://u:***@h:9000/db'
    >>> mask_url("chdb:data/chdb")
    'chdb:data/chdb'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def parse_store_url(url: SecretStr | str) -> ChdbTarget | NativeTarget:
    """Validate a store URL; raises :class:`ConfigError` naming the masked URL."""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    scheme = raw.split(":", 1)[0].lower() if ":" in raw else ""
    if scheme == "chdb":
        return _parse_chdb(raw)
    if scheme in NATIVE_SCHEMES:
        return _parse_native(raw, scheme)
    raise _bad(raw, "expected chdb:<dir>, clickhouse:// or clickhouses://")


def _bad(raw: str, why: str) -> ConfigError:
    return ConfigError(f"SPANSTREAM_CLICKHOUSE={mask_url(raw)!r}: {why}")


def _parse_chdb(raw: str) -> ChdbTarget:
    rest = raw[len("chdb:") :]
    rest, _, query = rest.partition("?")
    if rest.startswith("//"):
        # chdb:///abs/dir: an empty authority followed by an absolute path.
        if not rest.startswith("///"):
            raise _bad(raw, "chdb URLs take no host; use chdb:///abs/dir or chdb:rel/dir")
        rest = rest[2:]
    if not rest:
        raise _bad(raw, "missing directory after chdb:")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - {"database"}
    if unknown:
        raise _bad(raw, f"unknown chdb option(s): {', '.join(sorted(unknown))}")
    return ChdbTarget(path=rest, database=options.get("database") or None)


def _parse_native(raw: str, scheme: str) -> NativeTarget:
    try:
        parts = urlsplit(raw)
        port = parts.port or NATIVE_SCHEMES[scheme]
    except ValueError as exc:
        raise _bad(raw, str(exc)) from None
    if not parts.hostname:
        raise _bad(raw, "missing host")
    database = parts.path.lstrip("/") or "default"
    if "/" in database:
        raise _bad(raw, f"database name {database!r} contains '/'")
    user = parts.username or "default"
    netloc = user + (":***" if parts.password is not None else "") + f"@{parts.hostname}:{port}"
    display = urlunsplit((scheme, netloc, "/" + database, parts.query, ""))
    return NativeTarget(
        url=raw,
        display=display,
        host=parts.hostname,
        port=port,
        database=database,
        secure=scheme == "clickhouses",
    )
