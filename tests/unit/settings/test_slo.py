"""The SLO file setting: unset by default; a set one must name a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings


def test_the_setting_is_unset_by_default_and_must_name_a_file(tmp_path: Path) -> None:
    assert load_settings({}).slo_file == ""
    path = tmp_path / "slos.yaml"
    path.write_text("slos: []\n")
    assert load_settings({"SPANSTREAM_SLO_FILE": str(path)}).slo_file == str(path)
    with pytest.raises(ConfigError, match=r"SPANSTREAM_SLO_FILE='/nope.yaml': no such file"):
        load_settings({"SPANSTREAM_SLO_FILE": "/nope.yaml"})
    with pytest.raises(ConfigError, match=r"SPANSTREAM_SLO_FILE='.*': no such file"):
        load_settings({"SPANSTREAM_SLO_FILE": str(tmp_path)})
