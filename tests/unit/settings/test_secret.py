"""Secrets: read from a variable or its ``_FILE``, never both, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings
from pipeline.settings.secret import SecretStr

SASL = {
    "SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "SPANSTREAM_KAFKA_SASL_USERNAME": "worker",
    "SPANSTREAM_KAFKA_SASL_PASSWORD": "pw",
}


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
