"""The docs state the present and stay true to the code.

README.md stays short and opens with the two fresh-machine commands CI runs; every
``SPANSTREAM_*`` setting appears in a table under docs/ (or the README) with its real
default; every metric the worker exports is described; every relative link resolves.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from pipeline import metrics
from pipeline.settings import Settings
from pipeline.settings.env import env_name

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: Every Markdown file whose links are checked: the user docs plus the READMEs beside code.
MARKDOWN = [
    README,
    ROOT / "CHANGELOG.md",
    *DOCS,
    *sorted(p for d in ("infra", "pipeline", "tests") for p in (ROOT / d).rglob("*.md")),
]
SETTING_ROW = re.compile(r"^\| `(SPANSTREAM_[A-Z0-9_]+)` \| `([^`]*)` \|", re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _default(value: object) -> str:
    """A default as the tables print it; an empty one (no credentials, no file) is "(unset)".

    >>> _default(50_000), _default(True), _default("")
    ('50000', 'True', '(unset)')
    """
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return str(value) if value != "" else "(unset)"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading.

    >>> slug("Ports and `/query`"), slug("The commit protocol")
    ('ports-and-query', 'the-commit-protocol')
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _prose(path: Path) -> str:
    """The file without fenced code blocks or code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", path.read_text()))


def _read(relative: str) -> str:
    return (ROOT / relative).read_text()


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), re.MULTILINE)
    return {slug(h) for h in headings}


def test_readme_is_under_200_lines() -> None:
    assert len(README.read_text().splitlines()) < 200


def test_first_screen_shows_the_demo_and_test_commands_ci_runs() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:25])
    ci_commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_commands == ["make test"]
    assert re.search(r"^make test\b", first_screen, re.MULTILINE)
    assert re.search(r"^make demo\b", first_screen, re.MULTILINE)


def test_every_setting_is_documented_with_its_default() -> None:
    expected = {env_name(f.name): _default(getattr(Settings(), f.name)) for f in fields(Settings)}
    rows = [row for path in [README, *DOCS] for row in SETTING_ROW.findall(path.read_text())]
    assert {name for name, _ in rows} == set(expected)  # each documented, none invented
    wrong = [(name, shown, expected[name]) for name, shown in rows if shown != expected[name]]
    assert wrong == []


def test_every_metric_is_described_in_the_operations_page() -> None:
    defined = set(re.findall(r'"(spanstream_[a-z_]+)"', Path(metrics.__file__).read_text()))
    described = set(re.findall(r"^\| `(spanstream_[a-z_]+)`", _read("docs/operations.md"), re.M))
    assert defined and described == defined


def _resolves(linked: Path, anchor: str) -> bool:
    """The file exists and, for a Markdown file, so does the heading an anchor names."""
    if not linked.exists():
        return False
    return not anchor or linked.suffix != ".md" or anchor in _anchors(linked)


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(path)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not _resolves(linked, anchor):
            broken.append(target)
    assert broken == []


def test_the_readme_route_is_the_tested_alertmanager_config() -> None:
    """The copy-paste route groups and inhibits as infra/alertmanager/alertmanager.yml,
    the file the delivery tests run against a real Alertmanager."""
    import yaml

    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    pasted = next(yaml.safe_load(b) for b in blocks if "inhibit_rules" in b)
    tested = yaml.safe_load((ROOT / "infra/alertmanager/alertmanager.yml").read_text())
    (ours,) = pasted["route"]["routes"]
    (theirs,) = tested["route"]["routes"]
    assert ours["matchers"] == theirs["matchers"] and ours["group_by"] == theirs["group_by"]
    assert [r["matchers"] for r in ours["routes"]] == [r["matchers"] for r in theirs["routes"]]
    assert pasted["inhibit_rules"] == tested["inhibit_rules"]
