"""ClickHouse access behind one small interface: embedded chdb or a real server.

>>> from pipeline.store import open_store
>>> open_store("mysql://x")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pipeline.errors.ConfigError: SPANSTREAM_CLICKHOUSE='mysql://x': expected chdb:<dir>, ...
"""

from __future__ import annotations

from pipeline.settings.secret import SecretStr
from pipeline.store.base import QueryError, Store
from pipeline.store.url import ChdbTarget, NativeTarget, mask_url, parse_store_url

__all__ = ["QueryError", "Store", "mask_url", "open_store", "parse_store_url"]


def open_store(url: SecretStr | str) -> Store:
    """Open the store a URL names (see :mod:`pipeline.store.url`).

    Raises ConfigError for a bad URL; ServiceUnavailable when chdb's directory
    is busy. A server is contacted lazily, on the first call.
    """
    target = parse_store_url(url)
    if isinstance(target, ChdbTarget):
        from pipeline.store.chdb_store import ChdbStore

        return ChdbStore(target)
    assert isinstance(target, NativeTarget)
    from pipeline.store.native import NativeStore

    return NativeStore(target)
