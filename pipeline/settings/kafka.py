"""Kafka settings: the bootstrap servers and how every client authenticates and encrypts.

>>> KafkaOptions().kafka_security.protocol
'PLAINTEXT'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pipeline.errors import ConfigError
from pipeline.settings.env import env_name
from pipeline.settings.secret import SecretStr

DEFAULT_KAFKA = "127.0.0.1:9092"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How Kafka clients authenticate and encrypt; the default is plaintext, no auth.

    >>> KafkaSecurity().uses_ssl, KafkaSecurity(protocol="SASL_SSL").uses_sasl
    (False, True)
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: SecretStr = field(default_factory=lambda: SecretStr(""))
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    key_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    check_hostname: bool = True

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


@dataclass(frozen=True)
class KafkaOptions:
    """Where the Kafka cluster is and how to reach it (environment variable and default)."""

    #: SPANSTREAM_KAFKA: bootstrap servers of the Kafka cluster.
    kafka_bootstrap: str = DEFAULT_KAFKA
    #: SPANSTREAM_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL,
    #: for every Kafka client of the worker and the CLI (see :attr:`kafka_security`).
    kafka_security_protocol: str = "PLAINTEXT"
    #: SPANSTREAM_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only).
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    #: SPANSTREAM_KAFKA_SASL_USERNAME: the SASL principal (SASL_* only).
    kafka_sasl_username: str = ""
    #: SPANSTREAM_KAFKA_SASL_PASSWORD (or ``..._FILE``: a file holding it).
    kafka_sasl_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: SPANSTREAM_KAFKA_SSL_CA_FILE: PEM CA bundle the broker's certificate is checked
    #: against (SSL/SASL_SSL); empty: the system's CAs.
    kafka_ssl_ca_file: str = ""
    #: SPANSTREAM_KAFKA_SSL_CERT_FILE / SPANSTREAM_KAFKA_SSL_KEY_FILE: PEM client certificate
    #: and private key for mutual TLS; empty: no client certificate.
    kafka_ssl_cert_file: str = ""
    kafka_ssl_key_file: str = ""
    #: SPANSTREAM_KAFKA_SSL_KEY_PASSWORD (or ``..._FILE``): the client key's passphrase.
    kafka_ssl_key_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: SPANSTREAM_KAFKA_SSL_CHECK_HOSTNAME: the broker's certificate must name the host
    #: dialled; turn off only for brokers reached by an address their certificate lacks.
    kafka_ssl_check_hostname: bool = True

    @property
    def kafka_security(self) -> KafkaSecurity:
        """The security settings every Kafka client gets (see :mod:`pipeline.kafka_client`)."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password,
            ca_file=self.kafka_ssl_ca_file,
            cert_file=self.kafka_ssl_cert_file,
            key_file=self.kafka_ssl_key_file,
            key_password=self.kafka_ssl_key_password,
            check_hostname=self.kafka_ssl_check_hostname,
        )


def check(s: KafkaOptions) -> None:
    """Refuse settings that would silently connect with less security than asked for."""
    k = s.kafka_security
    proto = env_name("kafka_security_protocol")
    if k.protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"{proto}={k.protocol!r}: one of {', '.join(SECURITY_PROTOCOLS)}")
    if k.sasl_mechanism not in SASL_MECHANISMS:
        name = env_name("kafka_sasl_mechanism")
        raise ConfigError(f"{name}={k.sasl_mechanism!r}: one of {', '.join(SASL_MECHANISMS)}")
    _check_credentials_match(k, proto)
    _check_files(k)
    if k.uses_ssl:
        # Load the files now: a wrong key passphrase is a setting error, not a client crash.
        from pipeline.kafka_client import ssl_context

        ssl_context(k)


def _check_credentials_match(k: KafkaSecurity, proto: str) -> None:
    """SASL credentials exactly with a SASL protocol, TLS files only with an SSL one."""
    sasl = {"kafka_sasl_username": k.username, "kafka_sasl_password": k.password}
    ssl = {
        "kafka_ssl_ca_file": k.ca_file,
        "kafka_ssl_cert_file": k.cert_file,
        "kafka_ssl_key_file": k.key_file,
        "kafka_ssl_key_password": k.key_password,
    }
    for group, wanted, needs in ((sasl, k.uses_sasl, "SASL_"), (ssl, k.uses_ssl, "SSL")):
        for field_name, value in group.items():
            given = bool(value.get_secret_value() if isinstance(value, SecretStr) else value)
            if given and not wanted:
                raise ConfigError(
                    f"{env_name(field_name)} is set but {proto}={k.protocol!r} does not use "
                    f"it (set {proto} to a protocol with {needs})"
                )
            if k.uses_sasl and group is sasl and not given:
                raise ConfigError(f"{env_name(field_name)} is required with {proto}={k.protocol}")


def _check_files(k: KafkaSecurity) -> None:
    """A client certificate comes with its key, and every named file is readable."""
    if bool(k.cert_file) != bool(k.key_file):
        raise ConfigError(
            f"{env_name('kafka_ssl_cert_file')} and {env_name('kafka_ssl_key_file')} "
            "go together (mutual TLS needs both)"
        )
    paths = {
        "kafka_ssl_ca_file": k.ca_file,
        "kafka_ssl_cert_file": k.cert_file,
        "kafka_ssl_key_file": k.key_file,
    }
    for field_name, path in paths.items():
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{env_name(field_name)}={path!r}: no readable file there")
