"""Who may use the worker's web port: CSRF and DNS rebinding from a local browser fail."""

from __future__ import annotations

import pytest

from pipeline.web_guard import WebGuard

LOCAL = {"Host": "127.0.0.1:6066"}


def status(guard: WebGuard, method: str = "GET", **headers: str) -> int:
    refused = guard.refusal(method, {**LOCAL, **headers})
    return 200 if refused is None else refused[0]


@pytest.mark.parametrize("host", ["127.0.0.1:6066", "localhost:6066", "[::1]:6066", "LOCALHOST"])
def test_loopback_hosts_pass_without_a_token_on_loopback(host: str) -> None:
    assert status(WebGuard("127.0.0.1", ""), Host=host) == 200


@pytest.mark.parametrize("host", ["evil.example:6066", "rebind.attacker.test", "", "10.0.0.7"])
def test_a_rebound_name_is_refused(host: str) -> None:
    assert status(WebGuard("127.0.0.1", ""), Host=host) == 403


def test_a_cross_origin_page_is_refused() -> None:
    guard = WebGuard("127.0.0.1", "")
    assert status(guard, Origin="https://evil.example") == 403
    assert status(guard, Origin="http://localhost:3000") == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_reading_methods(method: str) -> None:
    assert status(WebGuard("127.0.0.1", ""), method) == 405


def test_the_token_is_checked_when_set() -> None:
    guard = WebGuard("127.0.0.1", "s3cret")
    assert status(guard) == 401
    assert status(guard, Authorization="Bearer wrong") == 401
    assert status(guard, Authorization="Basic s3cret") == 401
    assert status(guard, Authorization="Bearer s3cret") == 200
    # A non-ASCII token is refused like any wrong one (it used to raise: a 500).
    assert status(guard, Authorization="Bearer s3cr\u00e9t") == 401


def test_the_bind_host_passes_and_a_wildcard_bind_leaves_it_to_the_token() -> None:
    assert status(WebGuard("10.0.0.7", "t"), Host="10.0.0.7:6066", Authorization="Bearer t") == 200
    assert status(WebGuard("10.0.0.7", "t"), Host="other:6066", Authorization="Bearer t") == 403
    wildcard = WebGuard("0.0.0.0", "t")
    assert status(wildcard, Host="worker-3.internal:6066", Authorization="Bearer t") == 200
    assert status(wildcard, Host="worker-3.internal:6066") == 401
