"""What the wheel may hold: the package, none of the test harness.

:func:`harness_leaks` checks a set of shipped files (path -> source) for the
three ways the test harness gets into the wheel: a ``pipeline/testing``
package, a ``tests`` package, or a shipped module that imports ``tests`` or
defines a class of :mod:`tests.harness` (a copy under another name).

>>> harness_leaks({"pipeline/a.py": "import os\\n"}, {"LocalClickHouse"})
[]
>>> shipped = {"pipeline/testing/x.py": "",
...            "pipeline/b.py": "from tests.harness import tls\\n",
...            "pipeline/c.py": "class LocalClickHouse: ..."}
>>> for leak in harness_leaks(shipped, {"LocalClickHouse"}):
...     print(leak)
pipeline/testing/x.py: test package
pipeline/b.py: imports tests
pipeline/c.py: defines LocalClickHouse
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Set
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent
TEST_PACKAGES = ("pipeline/testing/", "tests/")


def harness_classes(directory: Path = HARNESS_DIR) -> set[str]:
    """The classes the test harness defines (module level)."""
    names: set[str] = set()
    for path in directory.glob("*.py"):
        tree = ast.parse(path.read_text())
        names |= {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    return names


def harness_leaks(files: Mapping[str, str], classes: Set[str]) -> list[str]:
    """One line per shipped file that is, imports or copies the test harness."""
    leaks: list[str] = []
    for path, source in files.items():
        if path.startswith(TEST_PACKAGES):
            leaks.append(f"{path}: test package")
            continue
        if not path.endswith(".py"):
            continue
        tree = ast.parse(source, path)
        if any(_imports_tests(node) for node in ast.walk(tree)):
            leaks.append(f"{path}: imports tests")
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        leaks += [f"{path}: defines {name}" for name in sorted(defined & classes)]
    return leaks


def _imports_tests(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "tests" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] == "tests"
    return False
