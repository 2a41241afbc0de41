"""Web and metrics ports, the web token, and the query limits."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings


def test_ports_bind_loopback_by_default() -> None:
    s = load_settings({})
    assert (s.web_bind, s.metrics_bind) == ("127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize("bind", ["0.0.0.0", "10.0.0.7", "::", "worker-3.internal"])
def test_a_web_port_beyond_loopback_needs_a_token(bind: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"SPANSTREAM_WEB_BIND": bind})
    message = str(refused.value)
    assert "SPANSTREAM_WEB_TOKEN" in message and bind in message and "\n" not in message
    with_token = load_settings({"SPANSTREAM_WEB_BIND": bind, "SPANSTREAM_WEB_TOKEN": "t"})
    assert with_token.web_bind == bind


def test_the_token_never_shows() -> None:
    s = load_settings({"SPANSTREAM_WEB_TOKEN": "hunter2"})
    assert "hunter2" not in repr(s) and s.web_token.get_secret_value() == "hunter2"


@pytest.mark.parametrize(
    "name", ["QUERY_TIMEOUT_SECONDS", "QUERY_MAX_ROWS", "QUERY_MAX_BYTES", "QUERY_MAX_THREADS"]
)
def test_query_limits_must_be_positive(name: str) -> None:
    with pytest.raises(ConfigError, match=f"SPANSTREAM_{name}='?0'?: must be > 0"):
        load_settings({f"SPANSTREAM_{name}": "0"})
