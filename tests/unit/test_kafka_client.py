"""Kafka connection settings: one mapping for every client, so SASL/TLS reach all of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.kafka_client import (
    aiokafka_kwargs,
    faust_kwargs,
    librdkafka_config,
    refusal,
    ssl_context,
)
from pipeline.settings.kafka import KafkaSecurity
from pipeline.settings.secret import SecretStr
from tests.harness.tls import TlsFiles, make_tls_files

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def mtls(tls: TlsFiles, **overrides: object) -> KafkaSecurity:
    values: dict[str, object] = {
        "protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "username": "w",
        "password": SecretStr("pw"),
        "ca_file": str(tls.ca),
        "cert_file": str(tls.client_cert),
        "key_file": str(tls.client_key),
        "key_password": SecretStr(tls.client_key_password),
    }
    values.update(overrides)
    return KafkaSecurity(**values)  # type: ignore[arg-type]


def test_librdkafka_gets_sasl_and_mutual_tls(tls: TlsFiles) -> None:
    conf = librdkafka_config("k:9093", mtls(tls))
    assert conf == {
        "bootstrap.servers": "k:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "w",
        "sasl.password": "pw",
        "ssl.ca.location": str(tls.ca),
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.certificate.location": str(tls.client_cert),
        "ssl.key.location": str(tls.client_key),
        "ssl.key.password": tls.client_key_password,
    }


def test_hostname_verification_can_be_turned_off_and_no_ca_means_the_system_store() -> None:
    conf = librdkafka_config("k:9093", KafkaSecurity(protocol="SSL", check_hostname=False))
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert conf["ssl.ca.location"] == "probe"
    assert "sasl.username" not in conf


def test_aiokafka_gets_the_same_settings_and_a_verifying_context(tls: TlsFiles) -> None:
    kwargs = aiokafka_kwargs("k:9093", mtls(tls))
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "k:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "w",
        "sasl_plain_password": "pw",
    }
    assert context.check_hostname is True


def test_faust_gets_sasl_ssl_credentials(tls: TlsFiles) -> None:
    kwargs = faust_kwargs("k:9093", mtls(tls))
    creds = kwargs["broker_credentials"]
    assert kwargs["broker"] == "kafka://k:9093"
    assert (creds.protocol.value, creds.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-256")
    assert creds.ssl_context is not None and "pw" not in repr(creds)


def test_faust_gets_tls_only_credentials_and_nothing_for_plaintext(tls: TlsFiles) -> None:
    ssl_only = faust_kwargs("k:9093", KafkaSecurity(protocol="SSL", ca_file=str(tls.ca)))
    assert ssl_only["broker_credentials"].protocol.value == "SSL"
    assert faust_kwargs("k:9092", KafkaSecurity()) == {"broker": "kafka://k:9092"}


def test_a_wrong_key_password_is_a_config_error_naming_the_setting(tls: TlsFiles) -> None:
    with pytest.raises(ConfigError, match="SPANSTREAM_KAFKA_SSL_KEY_PASSWORD") as info:
        ssl_context(mtls(tls, key_password=SecretStr("wrong-phrase")))
    assert "wrong-phrase" not in str(info.value)


class _Err:
    def __init__(self, name: str, text: str) -> None:
        self._name, self._text = name, text

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._text


@pytest.mark.parametrize(
    ("name", "text", "setting"),
    [
        ("_AUTHENTICATION", "b/bootstrap: SASL authentication error: bad", "SASL_PASSWORD"),
        ("_SSL", "b/bootstrap: SSL handshake failed: certificate verify failed", "SSL_CA_FILE"),
        ("_TRANSPORT", "b/bootstrap: SSL alert number 42 bad certificate", "SSL_CERT_FILE"),
    ],
)
def test_refusals_name_the_settings_to_check(name: str, text: str, setting: str) -> None:
    reason = refusal(_Err(name, text))
    assert reason is not None and f"SPANSTREAM_KAFKA_{setting}" in reason
    assert not reason.startswith("b/bootstrap")


def test_an_unreachable_broker_is_not_a_refusal() -> None:
    assert refusal(_Err("_TRANSPORT", "b/bootstrap: Connect to ipv4#1.2.3.4:9 failed")) is None


def _client_settings_outside_kafka_client() -> list[str]:
    """Places that set bootstrap servers themselves, bypassing the security settings."""
    found = []
    for path in sorted(PIPELINE.rglob("*.py")):
        if path.name == "kafka_client.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(PIPELINE.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "bootstrap.servers" for k in node.keys
            ):
                found.append(where)
            if isinstance(node, ast.Call):
                func = node.func
                callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                wanted = {"bootstrap_servers"} | ({"broker"} if callee == "App" else set())
                if any(k.arg in wanted for k in node.keywords):
                    found.append(where)
    return found


def test_every_kafka_client_is_built_from_kafka_client() -> None:
    assert _client_settings_outside_kafka_client() == []


class _Meta:
    def __init__(self) -> None:
        self.topics = {"alerts": object()}


class _Consumer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def list_topics(self, timeout: float) -> _Meta:
        if self.fail:
            raise RuntimeError("timed out")
        return _Meta()

    def poll(self, timeout: float) -> None:
        return None


@pytest.mark.parametrize(
    ("fail", "reason", "topics", "message"),
    [
        (False, None, ["alerts"], None),
        (False, None, ["alerts", "alerts-dlq"], "topic 'alerts-dlq' does not exist"),
        (True, None, ["alerts"], "Kafka unreachable: timed out"),
        (True, "SASL authentication failed", ["alerts"], "Kafka refused the connection: SASL"),
    ],
)
def test_check_topics_names_what_is_missing_in_one_line(
    fail: bool, reason: str | None, topics: list[str], message: str | None
) -> None:
    from types import SimpleNamespace

    from pipeline.errors import ServiceUnavailable
    from pipeline.kafka_client import check_topics

    refused = SimpleNamespace(reason=reason)
    if message is None:
        check_topics(_Consumer(fail), topics, refused)
        return
    with pytest.raises(ServiceUnavailable, match=message):
        check_topics(_Consumer(fail), topics, refused)
