"""``spanstream topics`` against a real broker: create, idempotent re-apply, drift, failures."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.cli import main
from pipeline.errors import TopicDriftError
from pipeline.kafka_client import KafkaSecurity
from pipeline.local.process import free_port
from pipeline.settings import load_settings
from pipeline.topics.admin import TopicAdmin
from pipeline.topics.declarations import DEFAULT_TOPICS_FILE, INTERNAL_ROLES, load_declarations
from pipeline.topics.reconcile import prepare_worker_topics

pytestmark = pytest.mark.integration

PLAIN = KafkaSecurity()
ROLE_ENV = {
    "input": "SPANSTREAM_INPUT_TOPIC",
    "dlq": "SPANSTREAM_DLQ_TOPIC",
    "alerts": "SPANSTREAM_ALERT_TOPIC",
    "alerts_dlq": "SPANSTREAM_DELIVERY_DLQ_TOPIC",
    "partials": "SPANSTREAM_PARTIALS_TOPIC",
}


@pytest.fixture
def role_names(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    """Unique topic names per role through the settings env vars; deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"it-{role}-{suffix}" for role in ROLE_ENV}
    for role, env in ROLE_ENV.items():
        monkeypatch.setenv(env, names[role])
    monkeypatch.setenv("SPANSTREAM_GROUP", f"it-{suffix}")
    names["windows_changelog"] = f"it-{suffix}-windows-windows-changelog"
    names["detectors_changelog"] = f"it-{suffix}-windows-detectors-changelog"
    names["slo_changelog"] = f"it-{suffix}-windows-slo-changelog"
    yield names
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [n for n in names.values() if n in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=15).values():
            future.result(15)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["topics", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_creates_every_declared_topic_then_is_a_no_op(
    kafka_bootstrap: str, role_names: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "apply", "--bootstrap", kafka_bootstrap)
    assert (code, err) == (0, "")
    assert sorted(line for line in out.splitlines() if line.startswith("created ")) == sorted(
        f"created {name}" for name in role_names.values()
    )
    decls = load_declarations(DEFAULT_TOPICS_FILE, load_settings())
    states = TopicAdmin(kafka_bootstrap, security=PLAIN).describe(d.name for d in decls)
    for decl in decls:
        state = states[decl.name]
        assert state.partitions == decl.partitions
        assert {k: state.config[k] for k in decl.config_dict} == decl.config_dict

    code, out, err = run_cli(capsys, "apply", "--bootstrap", kafka_bootstrap)
    assert (code, err) == (0, "")
    assert "created" not in out
    assert out.count(" ok ") == len(role_names)


def test_drift_is_reported_with_non_zero_exit_and_fixed_only_with_fix(
    kafka_bootstrap: str,
    role_names: dict[str, str],
    kafka_topic_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    drifted = kafka_topic_factory("it-drift", partitions=2, config={"retention.ms": "1000"})
    monkeypatch.setenv("SPANSTREAM_INPUT_TOPIC", drifted)

    code, out, err = run_cli(capsys, "apply", "--bootstrap", kafka_bootstrap)
    assert code != 0
    assert err.count("\n") == 1
    assert f"'{drifted}' drifted" in err
    assert "partitions: expected 6, actual 2 (fixable)" in out
    assert "retention.ms: expected 86400000, actual 1000 (fixable)" in out
    assert TopicAdmin(kafka_bootstrap, security=PLAIN).describe([drifted])[drifted].partitions == 2

    code, out, err = run_cli(capsys, "apply", "--bootstrap", kafka_bootstrap, "--fix")
    assert (code, err) == (0, ""), out
    state = TopicAdmin(kafka_bootstrap, security=PLAIN).describe([drifted])[drifted]
    assert (state.partitions, state.config["retention.ms"]) == (6, "86400000")


def test_partition_decrease_cannot_be_fixed(
    kafka_bootstrap: str,
    role_names: dict[str, str],
    kafka_topic_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    too_many = kafka_topic_factory("it-wide", partitions=5)
    monkeypatch.setenv("SPANSTREAM_ALERT_TOPIC", too_many)
    code, out, err = run_cli(capsys, "apply", "--bootstrap", kafka_bootstrap, "--fix")
    assert code != 0
    assert "partitions: expected 3, actual 5 (not fixable in place)" in out
    assert f"'{too_many}' drifted" in err


def test_check_on_missing_topic_exits_non_zero_with_one_line(
    kafka_bootstrap: str, role_names: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "check", "--bootstrap", kafka_bootstrap)
    assert code != 0
    assert err.count("\n") == 1
    assert err.startswith("spanstream: error: ")
    assert f"'{role_names['input']}' missing" in err


def test_unreachable_bootstrap_gives_one_line_quickly(capsys: pytest.CaptureFixture[str]) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    code, out, err = run_cli(capsys, "check", "--bootstrap", nobody, "--timeout", "3")
    assert time.monotonic() - began < 10
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1
    assert f"Kafka at {nobody} did not answer" in err


def test_worker_creates_only_its_changelogs_and_refuses_other_missing_topics(
    kafka_bootstrap: str, role_names: dict[str, str]
) -> None:
    settings = load_settings()
    decls = load_declarations(DEFAULT_TOPICS_FILE, settings)
    admin = TopicAdmin(kafka_bootstrap, security=PLAIN)
    with pytest.raises(TopicDriftError, match=role_names["input"]):
        prepare_worker_topics(admin, decls)
    admin.create([d for d in decls if d.role not in INTERNAL_ROLES])
    created = prepare_worker_topics(admin, decls)
    assert sorted(created) == sorted(
        [
            role_names["windows_changelog"],
            role_names["detectors_changelog"],
            role_names["slo_changelog"],
        ]
    )
    # Created and visible in the metadata before the worker goes on to start Faust.
    states = admin.describe(created)
    assert {states[n].partitions for n in created} == {settings.partials_partitions}
    assert prepare_worker_topics(admin, decls) == []
