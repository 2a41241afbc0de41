"""Settings: Kafka security and ClickHouse password options, secrets from files, and the
refusals that keep a half-configured deployment from silently connecting in the clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import SecretStr, load_settings
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


def test_a_password_file_is_read_and_its_trailing_newline_dropped(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret#/?\n")
    env = {**SASL, "SPANSTREAM_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    del env["SPANSTREAM_KAFKA_SASL_PASSWORD"]
    assert load_settings(env).kafka_sasl_password == SecretStr("s3cret#/?")


def test_a_secret_given_twice_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a")
    env = {**SASL, "SPANSTREAM_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    with pytest.raises(ConfigError, match=r"SPANSTREAM_KAFKA_SASL_PASSWORD and .*_FILE"):
        load_settings(env)


def test_an_unreadable_secret_file_names_the_variable_not_a_content(tmp_path: Path) -> None:
    env = {"SPANSTREAM_CLICKHOUSE_PASSWORD_FILE": str(tmp_path / "missing")}
    with pytest.raises(ConfigError, match=r"SPANSTREAM_CLICKHOUSE_PASSWORD_FILE=.*cannot read"):
        load_settings(env)


def test_secrets_never_show_in_repr() -> None:
    settings = load_settings({**SASL, "SPANSTREAM_KAFKA_SASL_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(settings.kafka_security)


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


# Web and metrics ports, and the query limits.


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


def test_dlq_max_value_bytes_is_read_and_bounded_under_the_producer_limit() -> None:
    assert load_settings({}).dlq_max_value_bytes == 524_288
    assert load_settings({"SPANSTREAM_DLQ_MAX_VALUE_BYTES": "1000"}).dlq_max_value_bytes == 1000
    with pytest.raises(ConfigError, match=r"SPANSTREAM_DLQ_MAX_VALUE_BYTES=2000000: must be in"):
        load_settings({"SPANSTREAM_DLQ_MAX_VALUE_BYTES": "2000000"})
