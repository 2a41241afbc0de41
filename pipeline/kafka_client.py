"""Connection settings of every Kafka client, from one place.

Each client (ingest consumer and producer, DLQ and alerts producers, the admin
client, the partials reader, ``spanstream alerts tail``/``generate``/``topics``,
the benchmark, and Faust/aiokafka in the window stage) is built from
:func:`librdkafka_config` (confluent-kafka) or :func:`aiokafka_kwargs` /
:func:`faust_kwargs` (aiokafka, Faust), so SASL and TLS apply to all of them
or to none. Passwords stay in :class:`~pipeline.settings.secret.SecretStr` until the
client is built and never reach a log line or argv.

>>> librdkafka_config("k:9092", KafkaSecurity())
{'bootstrap.servers': 'k:9092', 'security.protocol': 'PLAINTEXT'}
>>> from pipeline.settings.secret import SecretStr
>>> sasl = KafkaSecurity(protocol="SASL_PLAINTEXT", username="w", password=SecretStr("pw"))
>>> sorted(librdkafka_config("k:9092", sasl))  # doctest: +NORMALIZE_WHITESPACE
['bootstrap.servers', 'sasl.mechanism', 'sasl.password', 'sasl.username',
 'security.protocol']
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from pipeline.errors import ConfigError, ServiceUnavailable
from pipeline.settings.env import env_name
from pipeline.settings.kafka import KafkaSecurity

__all__ = [
    "KafkaSecurity",
    "RefusalWatch",
    "aiokafka_kwargs",
    "describe",
    "faust_kwargs",
    "librdkafka_config",
    "refusal",
    "ssl_context",
]


def librdkafka_config(bootstrap: str, security: KafkaSecurity) -> dict[str, Any]:
    """``bootstrap.servers`` plus the security settings, for confluent-kafka clients."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "security.protocol": security.protocol}
    if security.uses_sasl:
        conf["sasl.mechanism"] = security.sasl_mechanism
        conf["sasl.username"] = security.username
        conf["sasl.password"] = security.password.get_secret_value()
    if security.uses_ssl:
        # "probe": librdkafka looks in the usual system CA locations.
        conf["ssl.ca.location"] = security.ca_file or "probe"
        conf["ssl.endpoint.identification.algorithm"] = (
            "https" if security.check_hostname else "none"
        )
        if security.cert_file:
            conf["ssl.certificate.location"] = security.cert_file
            conf["ssl.key.location"] = security.key_file
        if security.key_password.get_secret_value():
            conf["ssl.key.password"] = security.key_password.get_secret_value()
    return conf


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """The TLS context aiokafka and Faust use: CA, optional client certificate, hostname check."""
    try:
        context = ssl.create_default_context(cafile=security.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        name = env_name("kafka_ssl_ca_file")
        raise ConfigError(f"{name}={security.ca_file!r}: not a PEM CA bundle ({exc})") from None
    if security.cert_file:
        # A callable, never None: with None, OpenSSL prompts on the terminal for the phrase.
        password = security.key_password.get_secret_value()
        try:
            context.load_cert_chain(
                security.cert_file, security.key_file, password=lambda: password
            )
        except (OSError, ssl.SSLError) as exc:
            # The exception text names the failing step, never the passphrase.
            cert, key = env_name("kafka_ssl_cert_file"), env_name("kafka_ssl_key_file")
            raise ConfigError(
                f"{cert}={security.cert_file!r} / {key}={security.key_file!r}: cannot load the "
                f"client certificate and key ({exc}; wrong or missing "
                f"{env_name('kafka_ssl_key_password')}?)"
            ) from None
    context.check_hostname = security.check_hostname
    return context


def aiokafka_kwargs(bootstrap: str, security: KafkaSecurity) -> dict[str, Any]:
    """``bootstrap_servers`` plus the security keyword arguments of aiokafka clients."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "security_protocol": security.protocol,
    }
    if security.uses_sasl:
        kwargs["sasl_mechanism"] = security.sasl_mechanism
        kwargs["sasl_plain_username"] = security.username
        kwargs["sasl_plain_password"] = security.password.get_secret_value()
    if security.uses_ssl:
        kwargs["ssl_context"] = ssl_context(security)
    return kwargs


def faust_kwargs(bootstrap: str, security: KafkaSecurity) -> dict[str, Any]:
    """``broker`` and ``broker_credentials`` for :class:`faust.App` (its consumer, producer
    and topic creation all use them)."""
    from faust.auth import SASLCredentials, SSLCredentials

    kwargs: dict[str, Any] = {"broker": f"kafka://{bootstrap}"}
    context = ssl_context(security) if security.uses_ssl else None
    if security.uses_sasl:
        # Faust picks SASL_SSL when it is given a context, SASL_PLAINTEXT otherwise.
        kwargs["broker_credentials"] = SASLCredentials(
            username=security.username,
            password=security.password.get_secret_value(),
            ssl_context=context,
            mechanism=security.sasl_mechanism,
        )
    elif context is not None:
        kwargs["broker_credentials"] = SSLCredentials(context)
    return kwargs


def describe(bootstrap: str, security: KafkaSecurity) -> str:
    """How a client connects, for error messages: never the password.

    >>> describe("k:9093", KafkaSecurity(protocol="SASL_SSL", username="w"))
    "k:9093 (SASL_SSL, SCRAM-SHA-512 as 'w')"
    """
    if security.uses_sasl:
        return (
            f"{bootstrap} ({security.protocol}, {security.sasl_mechanism} as {security.username!r})"
        )
    return f"{bootstrap} ({security.protocol})"


#: librdkafka error names that mean the broker refused these credentials or this TLS
#: setup: retrying cannot help, so a client stops with one line naming what to check.
_REFUSALS = {
    "_AUTHENTICATION": ("kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_mechanism"),
    "SASL_AUTHENTICATION_FAILED": ("kafka_sasl_username", "kafka_sasl_password"),
    "_SSL": ("kafka_ssl_ca_file", "kafka_ssl_check_hostname"),
}
#: A TLS alert from the broker during the handshake: it refused the client certificate.
_CERT_ALERT = ("kafka_ssl_cert_file", "kafka_ssl_key_file")


def refusal(err: Any) -> str | None:
    """Why the broker refused the connection, with the settings to check; None for other
    errors (an unreachable broker is retried, not refused).

    >>> class E:
    ...     def name(self): return "_AUTHENTICATION"
    ...     def str(self): return "h:1/bootstrap: SASL authentication error: bad credentials"
    >>> refusal(E())  # doctest: +ELLIPSIS
    'SASL authentication error: bad credentials (check SPANSTREAM_KAFKA_SASL_USERNAME, ...)'
    """
    name, text = err.name(), err.str()
    # librdkafka prefixes the broker ("sasl_ssl://h:p/bootstrap: "): the caller names it.
    detail = text.split("/bootstrap: ", 1)[-1]
    settings = _REFUSALS.get(name)
    if settings is None and "SSL alert" in text and "certificate" in text:
        settings = _CERT_ALERT
    if settings is None:
        return None
    return f"{detail} (check {', '.join(env_name(s) for s in settings)})"


class RefusalWatch:
    """An ``error_cb`` for confluent-kafka clients that remembers the first refusal."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, err: Any) -> None:
        if self.reason is None:
            self.reason = refusal(err)


def check_topics(consumer: Any, topics: Sequence[str], refused: Any) -> None:
    """Stop with one line (:class:`ServiceUnavailable`) when the broker is unreachable,
    refused the login (``refused.reason``, recorded by the client's ``error_cb``), or one
    of ``topics`` does not exist."""
    try:
        meta = consumer.list_topics(timeout=10)
    except Exception as exc:
        consumer.poll(0)  # serves error_cb, which records why the broker refused us
        if refused.reason is not None:
            raise ServiceUnavailable(f"Kafka refused the connection: {refused.reason}") from None
        raise ServiceUnavailable(f"Kafka unreachable: {exc}") from None
    for topic in topics:
        if topic not in meta.topics:
            raise ServiceUnavailable(
                f"topic {topic!r} does not exist: run `spanstream topics apply`"
            )
