"""Parse ``SPANSTREAM_CLICKHOUSE`` URLs into backend targets, masking passwords in errors.

Accepted forms:

* ``chdb:<dir>`` (relative to the working directory) or ``chdb:///abs/dir``:
  embedded chdb on that directory; ``?database=name`` selects a database.
* ``clickhouse://user:pass@host:9000/db``: a server over the native protocol;
  ``clickhouses://`` adds TLS (default port 9440). Other query parameters are
  passed to clickhouse-driver (connection options and server settings).

A user or password holding a character URLs reserve (``: / ? # @ %`` and spaces)
must be percent-encoded (``#`` is ``%23``, ``/`` is ``%2F``, ``?`` is ``%3F``,
``@`` is ``%40``, ``%`` is ``%25``), or, simpler, the password given apart, in
``SPANSTREAM_CLICKHOUSE_PASSWORD`` or ``SPANSTREAM_CLICKHOUSE_PASSWORD_FILE``
(:func:`with_password` puts it in, encoded).

>>> parse_store_url("chdb:data/chdb")
ChdbTarget(path='data/chdb', database=None)
>>> parse_store_url("clickhouse://bob:s3cret@db.local/traces").display
'clickhouse://bob:***@db.local:9000/traces'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pipeline.errors import ConfigError
from pipeline.settings.secret import SecretStr

NATIVE_SCHEMES = {"clickhouse": 9000, "clickhouses": 9440}
#: ``scheme://user:`` then everything up to the last ``@``: the password, however written.
_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*:).*@", re.DOTALL)
_ENCODE_HINT = (
    "percent-encode reserved characters in the user and password (# %23, / %2F, ? %3F, "
    "@ %40, % %25) or give the password in SPANSTREAM_CLICKHOUSE_PASSWORD(_FILE)"
)


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
    >>> mask_url("clickhouse://u:p#a/s?s@h/db")  # not percent-encoded: still all masked
    'clickhouse://u:***@h/db'
    """
    # Not urlsplit: an unencoded '#', '/' or '?' in the password would end its netloc
    # early and leave the rest of the password in the "masked" text.
    return _PASSWORD.sub(r"\1***@", url, count=1)


def has_password(url: str) -> bool:
    """True when ``url`` carries a password (``scheme://user:password@...``).

    >>> has_password("clickhouse://u:pw@h/db"), has_password("clickhouse://u@h/db")
    (True, False)
    """
    return _PASSWORD.match(url) is not None


def with_password(url: str, password: str) -> str:
    """``url`` (a server URL without a password) with ``password`` put in, percent-encoded.

    >>> with_password("clickhouse://bob@h/db", "p#ss/w?rd")
    'clickhouse://bob:p%23ss%2Fw%3Frd@h/db'
    >>> with_password("clickhouses://h", "x")
    'clickhouses://default:x@h'
    >>> with_password("chdb:data/chdb", "x")  # the embedded store has no users
    'chdb:data/chdb'
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme not in NATIVE_SCHEMES:
        # The embedded chdb store has no users; the same environment may serve both.
        return url
    if has_password(url):
        raise _bad(url, "holds a password and SPANSTREAM_CLICKHOUSE_PASSWORD is set: keep one")
    rest = url.split("://", 1)[1]
    user, at, _ = rest.partition("@")
    if at and not any(c in user for c in "/?#"):
        rest = rest[len(user) + 1 :]
    else:
        user = "default"
    return f"{url.split('://', 1)[0]}://{user}:{quote(password, safe='')}@{rest}"


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
        if has_password(raw) and "could not be cast" in str(exc):
            # Usually a '/', '?' or '#' inside the password, and the error text would quote
            # the piece after it ("Port could not be cast ... 'rest-of-password'").
            raise _bad(raw, f"user, password and host do not parse: {_ENCODE_HINT}") from None
        raise _bad(raw, str(exc)) from None
    if parts.fragment or "@" in parts.path + parts.query:
        raise _bad(raw, f"a reserved character ends the host part early: {_ENCODE_HINT}")
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
