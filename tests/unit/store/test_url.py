"""URL parsing for SPANSTREAM_CLICKHOUSE: targets, errors, password masking."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import SecretStr
from pipeline.store.url import ChdbTarget, NativeTarget, mask_url, parse_store_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("chdb:data/chdb", ChdbTarget("data/chdb")),
        ("chdb:///var/lib/spanstream", ChdbTarget("/var/lib/spanstream")),
        ("chdb:/abs/dir", ChdbTarget("/abs/dir")),
        ("chdb:d?database=t1", ChdbTarget("d", "t1")),
    ],
)
def test_chdb_urls(url: str, expected: ChdbTarget) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    ("url", "host", "port", "database", "secure", "display"),
    [
        ("clickhouse://h", "h", 9000, "default", False, "clickhouse://default@h:9000/default"),
        (
            "clickhouse://u:pw@h:9001/db",
            "h",
            9001,
            "db",
            False,
            "clickhouse://u:***@h:9001/db",
        ),
        ("clickhouses://u@h/db", "h", 9440, "db", True, "clickhouses://u@h:9440/db"),
        (
            "clickhouse://u:pw@h/db?async_insert=1",
            "h",
            9000,
            "db",
            False,
            "clickhouse://u:***@h:9000/db?async_insert=1",
        ),
    ],
)
def test_native_urls(
    url: str, host: str, port: int, database: str, secure: bool, display: str
) -> None:
    target = parse_store_url(SecretStr(url))
    assert isinstance(target, NativeTarget)
    assert (target.host, target.port, target.database, target.secure) == (
        host,
        port,
        database,
        secure,
    )
    assert target.display == display
    assert "pw" not in repr(target)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgres://u:pw@h/db", "expected chdb:<dir>"),
        ("", "expected chdb:<dir>"),
        ("chdb:", "missing directory"),
        ("chdb://host/dir", "take no host"),
        ("chdb:d?colour=blue", "unknown chdb option(s): colour"),
        ("clickhouse://u:pw@:9000/db", "missing host"),
        ("clickhouse://u:pw@h:99999/db", "Port out of range"),
        ("clickhouse://u:pw@h/a/b", "contains '/'"),
    ],
)
def test_bad_urls_name_the_masked_url(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_store_url(url)
    message = str(info.value)
    assert fragment in message
    assert "SPANSTREAM_CLICKHOUSE=" in message
    assert ":pw@" not in message


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("clickhouse://u:pw@h:9000/db", "clickhouse://u:***@h:9000/db"),
        ("clickhouses://u:p%40ss@h/db?x=1", "clickhouses://u:***@h/db?x=1"),
        ("clickhouse://u@h/db", "clickhouse://u@h/db"),
        ("chdb:data/chdb", "chdb:data/chdb"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
