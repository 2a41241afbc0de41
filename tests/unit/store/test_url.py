"""URL parsing for SPANSTREAM_CLICKHOUSE: targets, errors, password masking."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings
from pipeline.settings.secret import SecretStr
from pipeline.store.url import ChdbTarget, NativeTarget, mask_url, parse_store_url, with_password


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


#: Passwords with every character a URL reserves, and what ClickHouse must receive.
AWKWARD_PASSWORDS = ["p#ss", "a/b", "wh?at", "at@sign", "100%", "c:olon", "sp ace", "#/?@%:&="]


@pytest.mark.parametrize("password", AWKWARD_PASSWORDS)
def test_percent_encoded_passwords_reach_the_driver_decoded(password: str) -> None:
    from urllib.parse import quote

    from clickhouse_driver.util.helpers import parse_url

    url = f"clickhouse://bob:{quote(password, safe='')}@db.local:9000/traces"
    target = parse_store_url(url)
    assert isinstance(target, NativeTarget)
    assert (target.host, target.port, target.database) == ("db.local", 9000, "traces")
    assert target.display == "clickhouse://bob:***@db.local:9000/traces"
    host, kwargs = parse_url(target.url)
    assert (host, kwargs["user"], kwargs["password"]) == ("db.local", "bob", password)


@pytest.mark.parametrize("password", ["Zq#Xk", "Zq/Xk", "Zq?Xk", "Zq/Xk#Wv?Yu"])
def test_unencoded_reserved_characters_are_refused_with_the_fix(password: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_store_url(f"clickhouse://bob:{password}@db.local:9000/traces")
    message = str(info.value)
    assert "percent-encode" in message and "SPANSTREAM_CLICKHOUSE_PASSWORD" in message
    assert not any(piece in message for piece in ("Zq", "Xk", "Wv", "Yu"))


@pytest.mark.parametrize("password", AWKWARD_PASSWORDS)
def test_a_password_given_apart_is_encoded_into_the_url(password: str) -> None:
    from clickhouse_driver.util.helpers import parse_url

    target = parse_store_url(with_password("clickhouse://bob@db.local/traces", password))
    assert isinstance(target, NativeTarget)
    assert parse_url(target.url)[1]["password"] == password
    assert password not in repr(target)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("clickhouse://u:p#a/s?s@h/db", "clickhouse://u:***@h/db"),
        ("clickhouse://u:a@b@h:9000/db", "clickhouse://u:***@h:9000/db"),
    ],
)
def test_mask_url_hides_an_unencoded_password_whole(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_the_password_variable_and_the_url_compose() -> None:
    env = {
        "SPANSTREAM_CLICKHOUSE": "clickhouse://bob@db.local/traces",
        "SPANSTREAM_CLICKHOUSE_PASSWORD": "p#ss/w?rd",
    }
    url = load_settings(env).clickhouse_url.get_secret_value()
    assert url == "clickhouse://bob:p%23ss%2Fw%3Frd@db.local/traces"


def test_a_password_in_the_url_and_the_variable_is_refused() -> None:
    env = {
        "SPANSTREAM_CLICKHOUSE": "clickhouse://bob:one@db.local/traces",
        "SPANSTREAM_CLICKHOUSE_PASSWORD": "two",
    }
    with pytest.raises(ConfigError, match="keep one"):
        load_settings(env)


def test_a_password_on_the_command_line_is_refused() -> None:
    with pytest.raises(ConfigError, match="visible to every local user") as info:
        load_settings({}, clickhouse_url="clickhouse://bob:hunter2@db.local/traces")
    assert "hunter2" not in str(info.value)
    # Without a password the option is fine, and the variable supplies it.
    env = {"SPANSTREAM_CLICKHOUSE_PASSWORD": "hunter2"}
    url = load_settings(env, clickhouse_url="clickhouse://bob@db.local/traces").clickhouse_url
    assert url.get_secret_value() == "clickhouse://bob:hunter2@db.local/traces"
