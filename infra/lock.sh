#!/usr/bin/env bash
# Regenerate constraints.txt: install spanstream with its dev extras into a fresh venv
# (the newest versions pyproject.toml allows) and pin everything that got installed.
# Review the diff, run the tests (`make test`), commit both together.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q -e "$REPO[dev]"
{
  echo "# Pinned versions of every package spanstream installs (pip freeze of a fresh venv after"
  echo "# pip install -e '.[dev]', the project itself left out). Regenerate: make lock."
  echo "# Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())')"
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable --all | grep -v -E '^(pip|setuptools|wheel)=='
} >"$REPO/constraints.txt.tmp"
mv "$REPO/constraints.txt.tmp" "$REPO/constraints.txt"
echo "wrote $REPO/constraints.txt ($(grep -c '==' "$REPO/constraints.txt") pins)"
