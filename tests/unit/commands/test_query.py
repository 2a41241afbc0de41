"""``spanstream query`` prints JSON lines with no raw control character, still valid JSON."""

from __future__ import annotations

import argparse
import json

import pytest

from pipeline.commands import query


def test_rows_print_escaped_and_parse_back(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    row = ["cart\x1b]0;pwned\x07", "del\x7f c1\x9b bidi\u202e", "café"]
    monkeypatch.setattr(query, "_via_worker", lambda sql, port: [row])
    args = argparse.Namespace(sql="SELECT 1", direct=False, url=None, web_port=None)
    assert query.run(args) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert all(ch.isprintable() for ch in line), repr(line)
    assert "café" in line
    assert json.loads(line) == row
