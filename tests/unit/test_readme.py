"""The README's settings table is the user's reference: it must list every setting with its
real default, and its first screen must show the two fresh-machine commands CI uses."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from pipeline.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ROW = re.compile(r"^\| `(SPANSTREAM_[A-Z_]+)` \| `([^`]*)` \|", re.MULTILINE)


def _default(value: object) -> str:
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    # An empty default (no credentials, no file) reads "(unset)" in the table.
    return str(value) if value != "" else "(unset)"


def test_settings_table_lists_every_setting_with_its_default() -> None:
    documented = dict(ROW.findall(README))
    defaults = Settings()
    expected = {env_name(f.name): _default(getattr(defaults, f.name)) for f in fields(Settings)}
    assert documented == expected


def test_first_screen_shows_the_demo_and_test_commands_ci_runs() -> None:
    first_screen = "\n".join(README.splitlines()[:25])
    assert "make demo" in first_screen
    assert "make test" in first_screen
    assert "make test" in (ROOT / ".ci" / "run").read_text()
