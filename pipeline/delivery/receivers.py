"""The receivers an alert is posted to, and one HTTP POST (the only network code here).

* ``alertmanager``: ``<SPANSTREAM_ALERTMANAGER_URL>/api/v2/alerts``, a JSON array of
  postable alerts (:mod:`~pipeline.delivery.mapping`), basic auth or a bearer token;
* ``webhook``: ``SPANSTREAM_WEBHOOK_URL``, the alert record's JSON value as it is on the
  topic (``alert_id`` + ``version`` let the receiver drop duplicates), optional bearer token.

Credentials live in :attr:`Receiver.headers`, which no ``repr`` or log line shows.
Redirects are not followed: a POST answered with 3xx is a misconfigured URL, reported
as that status.

>>> from pipeline.settings import load_settings
>>> s = load_settings({"SPANSTREAM_ALERTMANAGER_URL": "http://am:9093/",
...                    "SPANSTREAM_ALERTMANAGER_BEARER_TOKEN": "t0ken"})
>>> [am] = receivers_from(s)
>>> am
Receiver(name='alertmanager', url='http://am:9093/api/v2/alerts')
>>> dict(am.headers)["Authorization"]
'Bearer t0ken'
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.delivery.mapping import ended_now, postable
from pipeline.settings import Settings

#: Bytes of a receiver's error answer kept for logs and dead-letter headers.
DETAIL_BYTES = 300


@dataclass(frozen=True)
class Receiver:
    """Where alerts go: ``name`` (a metric label), ``url`` and request headers."""

    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Answer:
    """A receiver's answer: its HTTP status (None: none came) and what it said or what broke."""

    status: int | None
    detail: str = ""


def receivers_from(settings: Settings) -> list[Receiver]:
    """The configured receivers, Alertmanager first."""
    found = []
    json_type = ("Content-Type", "application/json")
    if settings.alertmanager_url:
        url = settings.alertmanager_url.rstrip("/") + "/api/v2/alerts"
        found.append(Receiver("alertmanager", url, (json_type, *_alertmanager_auth(settings))))
    if settings.webhook_url:
        token = settings.webhook_bearer_token.get_secret_value()
        auth = (("Authorization", f"Bearer {token}"),) if token else ()
        found.append(Receiver("webhook", settings.webhook_url, (json_type, *auth)))
    return found


def _alertmanager_auth(settings: Settings) -> tuple[tuple[str, str], ...]:
    token = settings.alertmanager_bearer_token.get_secret_value()
    if token:
        return (("Authorization", f"Bearer {token}"),)
    if settings.alertmanager_username:
        pair = (
            f"{settings.alertmanager_username}:{settings.alertmanager_password.get_secret_value()}"
        )
        return (("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()),)
    return ()


def request_body(
    receiver: Receiver,
    message: dict[str, Any],
    raw: bytes,
    now: datetime,
    settings: Settings,
    superseded: dict[str, Any] | None = None,
) -> bytes:
    """What ``receiver`` is sent for one alert: Alertmanager's array, or the record as is.

    ``superseded``: the alert's previous firing message when its labels differ (its
    severity changed); Alertmanager is told it ended now, so it does not linger as a
    second alert until it times out.
    """
    if receiver.name != "alertmanager":
        return raw
    ended = [] if superseded is None else [ended_now(superseded, now)]
    return alertmanager_body([message, *ended], now, settings)


def alertmanager_body(messages: list[dict[str, Any]], now: datetime, settings: Settings) -> bytes:
    """The JSON array of postable alerts for ``messages``."""
    alerts = [
        postable(
            m,
            now=now,
            resend_seconds=settings.alertmanager_resend_seconds,
            link_template=settings.trace_link_template,
        )
        for m in messages
    ]
    return json.dumps(alerts).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(receiver: Receiver, body: bytes, timeout: float) -> Answer:
    """POST ``body``; never raises for a network or HTTP failure (the answer tells)."""
    try:
        request = urllib.request.Request(
            receiver.url, data=body, headers=dict(receiver.headers), method="POST"
        )
        with _OPENER.open(request, timeout=timeout) as response:
            return Answer(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            said = exc.read(DETAIL_BYTES).decode("utf-8", "replace").strip()
        return Answer(exc.code, f"HTTP {exc.code}: {said}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Answer(None, f"{type(exc).__name__}: {reason}"[:DETAIL_BYTES])
