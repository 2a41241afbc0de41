"""Alert delivery (``spanstream alerts forward``): receivers, their credentials, retries.

>>> check(DeliveryOptions(alertmanager_url="http://am:9093"))
>>> check(DeliveryOptions(alertmanager_url="http://ops:pw@am:9093"))
Traceback (most recent call last):
...
pipeline.errors.ConfigError: SPANSTREAM_ALERTMANAGER_URL='http://***@am:9093': no credentials \
in the URL (they would show in logs): use SPANSTREAM_ALERTMANAGER_USERNAME/_PASSWORD or \
SPANSTREAM_ALERTMANAGER_BEARER_TOKEN
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.settings.env import enforce, env_name
from pipeline.settings.secret import SecretStr

#: The placeholder a trace link template must hold.
TRACE_ID_PLACEHOLDER = "{trace_id}"


def _secret() -> SecretStr:
    return SecretStr("")


@dataclass(frozen=True)
class DeliveryOptions:
    """Where ``spanstream alerts forward`` posts alerts and how it retries (variable, default)."""

    #: SPANSTREAM_ALERTMANAGER_URL: Alertmanager base URL (``/api/v2/alerts`` is appended);
    #: empty: no Alertmanager.
    alertmanager_url: str = ""
    #: SPANSTREAM_ALERTMANAGER_USERNAME: basic-auth user for Alertmanager (with the password).
    alertmanager_username: str = ""
    #: SPANSTREAM_ALERTMANAGER_PASSWORD: its password (or ``_FILE``). A secret: never logged.
    alertmanager_password: SecretStr = field(default_factory=_secret)
    #: SPANSTREAM_ALERTMANAGER_BEARER_TOKEN: bearer token for Alertmanager (or ``_FILE``),
    #: instead of basic auth.
    alertmanager_bearer_token: SecretStr = field(default_factory=_secret)
    #: SPANSTREAM_ALERTMANAGER_RESEND_SECONDS: firing alerts are re-posted this often with
    #: ``endsAt`` 4 intervals ahead, so Alertmanager keeps them firing (and regains them
    #: after its own restart) until their resolution arrives.
    alertmanager_resend_seconds: float = 60.0
    #: SPANSTREAM_WEBHOOK_URL: a generic webhook that gets each alert JSON as is; empty: none.
    webhook_url: str = ""
    #: SPANSTREAM_WEBHOOK_BEARER_TOKEN: bearer token for the webhook (or ``_FILE``).
    webhook_bearer_token: SecretStr = field(default_factory=_secret)
    #: SPANSTREAM_TRACE_LINK_TEMPLATE: link to a trace in the ``trace_url`` annotation, with
    #: ``{trace_id}`` (e.g. ``https://grafana/explore?traceId={trace_id}``); empty: no link.
    trace_link_template: str = ""
    #: SPANSTREAM_DELIVERY_TIMEOUT_SECONDS: one HTTP request to a receiver times out after this.
    delivery_timeout_seconds: float = 10.0
    #: SPANSTREAM_DELIVERY_RETRY_INITIAL_SECONDS: first retry delay (doubles per failure).
    delivery_retry_initial_seconds: float = 0.5
    #: SPANSTREAM_DELIVERY_RETRY_MAX_SECONDS: retry delays stop growing here (jittered).
    delivery_retry_max_seconds: float = 30.0
    #: SPANSTREAM_DELIVERY_DLQ_TOPIC: alert records no receiver can take, reason in headers.
    delivery_dlq_topic: str = "spanstream-alerts-dlq"
    #: SPANSTREAM_DELIVERY_GROUP: consumer group of the forwarder on the alert topic.
    delivery_group: str = "spanstream-alerts-forward"
    #: SPANSTREAM_DELIVERY_METRICS_PORT: the forwarder's Prometheus port (0 disables); it
    #: listens on SPANSTREAM_METRICS_BIND.
    delivery_metrics_port: int = 9465


def check(s: DeliveryOptions) -> None:
    """URLs without credentials, one kind of Alertmanager auth, positive delays."""
    basic = bool(s.alertmanager_username) or bool(s.alertmanager_password.get_secret_value())
    _refuse_userinfo("alertmanager_url", s.alertmanager_url, _AM_AUTH)
    _refuse_userinfo("webhook_url", s.webhook_url, "SPANSTREAM_WEBHOOK_BEARER_TOKEN")
    enforce(
        s,
        [
            ("alertmanager_url", url_ok(s.alertmanager_url), _URL_RULE),
            ("webhook_url", url_ok(s.webhook_url), _URL_RULE),
            (
                "alertmanager_bearer_token",
                not (basic and s.alertmanager_bearer_token.get_secret_value()),
                "set either basic auth (SPANSTREAM_ALERTMANAGER_USERNAME/_PASSWORD) or a bearer "
                "token, not both",
            ),
            (
                "alertmanager_username",
                not basic or bool(s.alertmanager_username),
                "required with SPANSTREAM_ALERTMANAGER_PASSWORD",
            ),
            (
                "trace_link_template",
                not s.trace_link_template or TRACE_ID_PLACEHOLDER in s.trace_link_template,
                f"must contain {TRACE_ID_PLACEHOLDER}",
            ),
            ("alertmanager_resend_seconds", s.alertmanager_resend_seconds > 0, "must be > 0"),
            ("delivery_timeout_seconds", s.delivery_timeout_seconds > 0, "must be > 0"),
            (
                "delivery_retry_initial_seconds",
                0 < s.delivery_retry_initial_seconds <= s.delivery_retry_max_seconds,
                "must be > 0 and <= SPANSTREAM_DELIVERY_RETRY_MAX_SECONDS",
            ),
            ("delivery_dlq_topic", bool(s.delivery_dlq_topic), "must not be empty"),
            ("delivery_group", bool(s.delivery_group), "must not be empty"),
            (
                "delivery_metrics_port",
                0 <= s.delivery_metrics_port <= 65535,
                "must be a port (0 disables)",
            ),
        ],
    )


_URL_RULE = "expected an http:// or https:// URL with a host (or empty)"
_AM_AUTH = "SPANSTREAM_ALERTMANAGER_USERNAME/_PASSWORD or SPANSTREAM_ALERTMANAGER_BEARER_TOKEN"


def _refuse_userinfo(field_name: str, url: str, instead: str) -> None:
    """A URL with ``user:password@`` is refused; the error shows it without them."""
    if not _has_userinfo(url):
        return
    parts = urlsplit(url)
    shown = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    raise ConfigError(
        f"{env_name(field_name)}={shown!r}: no credentials in the URL (they would show in "
        f"logs): use {instead}"
    )


def url_ok(url: str) -> bool:
    """Empty, or an absolute http(s) URL with a host.

    >>> [url_ok(u) for u in ("", "http://am:9093", "https://h/x", "am:9093", "ftp://h", "http://")]
    [True, True, True, False, False, False]
    """
    if not url:
        return True
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False
