"""Alert delivery settings: receiver URLs, credentials kept out of URLs and logs, delays."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings


def test_defaults_deliver_nowhere_until_a_receiver_is_set() -> None:
    s = load_settings({})
    assert (s.alertmanager_url, s.webhook_url) == ("", "")
    assert s.delivery_dlq_topic == "spanstream-alerts-dlq"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ALERTMANAGER_URL": "am:9093"},
            "SPANSTREAM_ALERTMANAGER_URL='am:9093': expected an http",
        ),
        ({"WEBHOOK_URL": "ftp://h/x"}, "SPANSTREAM_WEBHOOK_URL='ftp://h/x': expected an http"),
        ({"WEBHOOK_URL": "http://"}, "SPANSTREAM_WEBHOOK_URL='http://': expected an http"),
        (
            {"ALERTMANAGER_URL": "http://u:pw@am:9093"},
            "SPANSTREAM_ALERTMANAGER_URL='http://\\*\\*\\*@am:9093': no credentials in the URL",
        ),
        (
            {"WEBHOOK_URL": "https://t@h/"},
            "SPANSTREAM_WEBHOOK_URL='https://\\*\\*\\*@h/': no credentials",
        ),
        (
            {"ALERTMANAGER_USERNAME": "ops", "ALERTMANAGER_BEARER_TOKEN": "t"},
            "SPANSTREAM_ALERTMANAGER_BEARER_TOKEN='': set either basic auth",
        ),
        (
            {"ALERTMANAGER_PASSWORD": "pw"},
            "SPANSTREAM_ALERTMANAGER_USERNAME='': required with SPANSTREAM_ALERTMANAGER_PASSWORD",
        ),
        (
            {"TRACE_LINK_TEMPLATE": "https://g/explore?id=%s"},
            "SPANSTREAM_TRACE_LINK_TEMPLATE='https://g/explore.id=%s': must contain",
        ),
        ({"ALERTMANAGER_RESEND_SECONDS": "0"}, "SPANSTREAM_ALERTMANAGER_RESEND_SECONDS=0.0: must"),
        ({"DELIVERY_TIMEOUT_SECONDS": "-1"}, "SPANSTREAM_DELIVERY_TIMEOUT_SECONDS=-1.0: must"),
        (
            {"DELIVERY_RETRY_INITIAL_SECONDS": "60"},
            "SPANSTREAM_DELIVERY_RETRY_INITIAL_SECONDS=60.0: must be > 0 and <=",
        ),
        ({"DELIVERY_DLQ_TOPIC": ""}, "SPANSTREAM_DELIVERY_DLQ_TOPIC='': must not be empty"),
        ({"DELIVERY_METRICS_PORT": "70000"}, "SPANSTREAM_DELIVERY_METRICS_PORT=70000: must be"),
        (
            {"DELIVERY_TIMEOUT_SECONDS": "soon"},
            "SPANSTREAM_DELIVERY_TIMEOUT_SECONDS='soon': expected",
        ),
    ],
)
def test_each_rule_names_the_variable_and_its_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message.replace('?', '.')}") as refused:
        load_settings({f"SPANSTREAM_{k}": v for k, v in env.items()})
    assert "\n" not in str(refused.value)


def test_secrets_never_show_and_come_from_files(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    s = load_settings(
        {
            "SPANSTREAM_ALERTMANAGER_URL": "http://am:9093",
            "SPANSTREAM_ALERTMANAGER_BEARER_TOKEN_FILE": str(token),
            "SPANSTREAM_WEBHOOK_BEARER_TOKEN": "hook-secret",
        }
    )
    assert s.alertmanager_bearer_token.get_secret_value() == "s3cret-token"
    assert "s3cret" not in repr(s) and "hook-secret" not in repr(s)
    with pytest.raises(ConfigError) as refused:
        load_settings({"SPANSTREAM_ALERTMANAGER_PASSWORD": "hunter2"})
    assert "hunter2" not in str(refused.value)
