"""Topic declarations: parsing, validation, names taken from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings
from pipeline.topics.declarations import DEFAULT_TOPICS_FILE, load_declarations, parse_declarations

SETTINGS = load_settings({})


def entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "t1", "partitions": 2, "replication_factor": 1}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_repository_declarations_cover_every_role() -> None:
    decls = load_declarations(DEFAULT_TOPICS_FILE, SETTINGS)
    by_role = {d.role: d for d in decls}
    assert set(by_role) == {
        "input",
        "dlq",
        "alerts",
        "alerts_dlq",
        "partials",
        "windows_changelog",
        "detectors_changelog",
        "slo_changelog",
    }
    for role in ("partials", "windows_changelog", "detectors_changelog", "slo_changelog"):
        # Faust co-partitions the tables' changelogs with the partials topic.
        assert by_role[role].partitions == SETTINGS.partials_partitions
    assert by_role["windows_changelog"].config_dict["cleanup.policy"] == "compact"
    assert by_role["input"].name == "otlp_spans"
    assert by_role["input"].partitions == 6
    assert by_role["alerts"].partitions == 3
    assert int(by_role["dlq"].config_dict["retention.ms"]) > int(
        by_role["input"].config_dict["retention.ms"]
    )


def test_role_names_follow_settings_environment() -> None:
    settings = load_settings(
        {
            "SPANSTREAM_INPUT_TOPIC": "spans-x",
            "SPANSTREAM_DLQ_TOPIC": "d-x",
            "SPANSTREAM_GROUP": "g",
        }
    )
    names = {d.role: d.name for d in load_declarations(DEFAULT_TOPICS_FILE, settings)}
    assert names == {
        "input": "spans-x",
        "dlq": "d-x",
        "alerts": "spanstream-alerts",
        "alerts_dlq": "spanstream-alerts-dlq",
        "partials": "spanstream-partials",
        "windows_changelog": "g-windows-windows-changelog",
        "detectors_changelog": "g-windows-detectors-changelog",
        "slo_changelog": "g-windows-slo-changelog",
    }


def test_config_values_become_kafka_strings() -> None:
    doc = {"topics": [entry(config={"retention.ms": 1000, "preallocate": True})]}
    (decl,) = parse_declarations(doc, SETTINGS, "f.yaml")
    assert decl.config_dict == {"retention.ms": "1000", "preallocate": "true"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, "f.yaml: expected a mapping with a 'topics' list"),
        ({"topics": "x"}, "f.yaml: expected a mapping with a 'topics' list"),
        ({"topics": ["x"]}, "f.yaml: topic #1: expected a mapping, got 'x'"),
        ({"topics": [entry(partitons=3)]}, "topic #1: unknown option 'partitons'"),
        ({"topics": [entry(name=None)]}, "give exactly one of 'role'"),
        ({"topics": [entry(role="dlq")]}, "give exactly one of 'role'"),
        ({"topics": [entry(name=None, role="spans")]}, "role='spans': expected one of input"),
        ({"topics": [entry(name="")]}, "name='': expected a non-empty string"),
        ({"topics": [entry(partitions=0)]}, "topic 't1': partitions=0: expected an integer >= 1"),
        ({"topics": [entry(partitions="6")]}, "topic 't1': partitions='6': expected an integer"),
        ({"topics": [entry(replication_factor=True)]}, "replication_factor=True: expected"),
        ({"topics": [entry(config=[1])]}, "topic 't1': config=[1]: expected a mapping"),
        (
            {"topics": [entry(config={"retention.ms": "1d"})]},
            "topic 't1': retention.ms='1d': expected an integer >= -1",
        ),
        (
            {"topics": [entry(config={"cleanup.policy": "forever"})]},
            "topic 't1': cleanup.policy='forever': expected one of compact",
        ),
        (
            {"topics": [entry(config={"compression.type": "brotli"})]},
            "topic 't1': compression.type='brotli': expected one of gzip",
        ),
        ({"topics": [entry(), entry()]}, "f.yaml: topic 't1' declared twice"),
    ],
)
def test_invalid_declarations_name_file_topic_option_and_value(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_declarations(document, SETTINGS, "f.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("f.yaml")


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_declarations(tmp_path / "missing.yaml", SETTINGS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_declarations(bad, SETTINGS)
