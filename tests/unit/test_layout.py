"""Layout rules a reader relies on: no Python module in ``pipeline/`` over 400 lines."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
MAX_LINES = 400


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_is_over_the_line_limit() -> None:
    over = {name: lines for name, lines in _line_counts().items() if lines > MAX_LINES}
    assert over == {}, f"split these modules (at most {MAX_LINES} lines each): {over}"
