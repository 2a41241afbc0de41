"""Kafka security settings, and the refusals that keep a half-configured deployment
from silently connecting in the clear."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings
from tests.harness.tls import TlsFiles, make_tls_files

SASL = {
    "SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "SPANSTREAM_KAFKA_SASL_USERNAME": "worker",
    "SPANSTREAM_KAFKA_SASL_PASSWORD": "pw",
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_the_default_is_plaintext_without_credentials() -> None:
    security = load_settings({}).kafka_security
    assert (security.protocol, security.uses_sasl, security.uses_ssl) == ("PLAINTEXT", False, False)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL='TLS': one of"),
        ({**SASL, "SPANSTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SASL_MECHANISM='GSSAPI'"),
        (
            {**SASL, "SPANSTREAM_KAFKA_SASL_PASSWORD": ""},
            "SPANSTREAM_KAFKA_SASL_PASSWORD is required",
        ),
        # Credentials with a protocol that would not send them: refused, not ignored.
        ({"SPANSTREAM_KAFKA_SASL_USERNAME": "w"}, "SASL_USERNAME is set but"),
        ({"SPANSTREAM_KAFKA_SSL_CA_FILE": "/etc/hostname"}, "SSL_CA_FILE is set but"),
        (
            {"SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "SPANSTREAM_KAFKA_SSL_CA_FILE": "/no"},
            "SPANSTREAM_KAFKA_SSL_CA_FILE='/no': no readable file",
        ),
        ({"SPANSTREAM_KAFKA_SSL_CHECK_HOSTNAME": "maybe"}, "CHECK_HOSTNAME='maybe': expected"),
    ],
)
def test_bad_security_settings_name_the_option(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_a_client_certificate_needs_its_key(tls: TlsFiles) -> None:
    env = {
        "SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SPANSTREAM_KAFKA_SSL_CERT_FILE": str(tls.client_cert),
    }
    with pytest.raises(ConfigError, match="go together"):
        load_settings(env)


def test_a_wrong_key_passphrase_is_a_setting_error(tls: TlsFiles) -> None:
    env = {
        "SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SPANSTREAM_KAFKA_SSL_CA_FILE": str(tls.ca),
        "SPANSTREAM_KAFKA_SSL_CERT_FILE": str(tls.client_cert),
        "SPANSTREAM_KAFKA_SSL_KEY_FILE": str(tls.client_key),
    }
    with pytest.raises(ConfigError, match="KEY_PASSWORD"):
        load_settings(env)
    env["SPANSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE"] = str(tls.client_key_password_file)
    env["SPANSTREAM_KAFKA_SSL_CHECK_HOSTNAME"] = "false"
    security = load_settings(env).kafka_security
    assert (security.uses_ssl, security.check_hostname) == (True, False)
