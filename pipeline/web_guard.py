"""Who may use the worker's web port: a bearer token, a Host check, reads only.

A web page in a local browser can send requests to 127.0.0.1 (CSRF) or, after
re-pointing its own DNS name there, read the answers (DNS rebinding). The page
cannot set a Host header of 127.0.0.1 or know the token; so a request passes
only with

* method GET or HEAD (nothing on the port changes state);
* a Host, and an Origin if sent, naming a loopback address or the bind host
  (any host when the port binds every interface: the token is required then);
* ``Authorization: Bearer <SPANSTREAM_WEB_TOKEN>`` when a token is set.

>>> guard = WebGuard(bind="127.0.0.1", token="")
>>> guard.refusal("GET", {"Host": "127.0.0.1:6066"})
>>> guard.refusal("GET", {"Host": "evil.example:6066"})
(403, 'Host evil.example is not this worker (SPANSTREAM_WEB_BIND)')
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pipeline.settings import Settings
from pipeline.settings.web import is_loopback

_WILDCARDS = ("0.0.0.0", "::", "")


class WebGuard:
    """Decides whether one request may reach the web port's handlers."""

    def __init__(self, bind: str, token: str) -> None:
        self._bind = bind.strip("[]").lower()
        self._token = token

    @classmethod
    def of(cls, s: Settings) -> WebGuard:
        return cls(s.web_bind, s.web_token.get_secret_value())

    def refusal(self, method: str, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """``(status, reason)`` when the request must be refused, else None."""
        if method not in ("GET", "HEAD"):
            return 405, f"{method} is not allowed: the web port only reads"
        host = _hostname(headers.get("Host", ""))
        if not self._known(host):
            return 403, f"Host {host or '(none)'} is not this worker (SPANSTREAM_WEB_BIND)"
        origin = headers.get("Origin")
        if origin is not None and origin != "null" and not self._known(_origin_host(origin)):
            return 403, f"Origin {origin} may not use this worker"
        if self._token and not _bearer_matches(headers.get("Authorization", ""), self._token):
            return 401, "missing or wrong bearer token (SPANSTREAM_WEB_TOKEN)"
        return None

    def _known(self, host: str) -> bool:
        if self._bind in _WILDCARDS:
            return True
        return is_loopback(host) or host == self._bind


def _hostname(host: str) -> str:
    """The name in a Host header, without port or IPv6 brackets.

    >>> _hostname("[::1]:6066"), _hostname("LocalHost:80"), _hostname("10.0.0.5")
    ('::1', 'localhost', '10.0.0.5')
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _origin_host(origin: str) -> str:
    try:
        return (urlsplit(origin).hostname or "").lower()
    except ValueError:
        return ""


def _bearer_matches(header: str, token: str) -> bool:
    """Constant-time; bytes, since compare_digest raises on non-ASCII str (a 500, not a 401).

    >>> _bearer_matches("Bearer \u00e9t\u00e9", "pw"), _bearer_matches("Bearer pw", "pw")
    (False, True)
    """
    scheme, _, value = header.partition(" ")
    given = value.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, token.encode())


def middleware(guard: WebGuard) -> Callable[..., Awaitable[Any]]:
    """The guard as an aiohttp middleware, for every route of the Faust web app."""
    from aiohttp import web

    @web.middleware
    async def check(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        refused = guard.refusal(request.method, request.headers)
        if refused is not None:
            status, reason = refused
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return web.json_response({"error": reason}, status=status, headers=headers)
        return await handler(request)

    return check
