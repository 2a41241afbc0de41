"""Secrets in settings: a string that never prints itself, read from a variable or a file.

A secret reaches the worker through ``SPANSTREAM_<NAME>`` or ``SPANSTREAM_<NAME>_FILE``
(a mounted secret), never through the command line, where any local user can read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import ConfigError


class SecretStr:
    """A string that never shows itself in ``repr``/``str`` (logs, tracebacks).

    >>> SecretStr("hunter2")
    SecretStr('**********')
    >>> SecretStr("hunter2").get_secret_value()
    'hunter2'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def is_secret_type(field_type: object) -> bool:
    """True for a settings field annotated ``SecretStr`` (string annotations included)."""
    return field_type in (SecretStr, "SecretStr")


def secret_from_env(env: Mapping[str, str], name: str) -> SecretStr | None:
    """``name`` or ``<name>_FILE`` from ``env`` (not both); None when neither is set.

    >>> secret_from_env({"PW": "x"}, "PW")
    SecretStr('**********')
    """
    if name + "_FILE" not in env:
        return SecretStr(env[name]) if name in env else None
    if name in env:
        raise ConfigError(f"{name} and {name}_FILE are both set: keep one")
    return _read_secret_file(name, env[name + "_FILE"])


def _read_secret_file(name: str, path: str) -> SecretStr:
    """A secret from ``<NAME>_FILE``; one trailing newline is dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # The error names the file, never its content.
        raise ConfigError(
            f"{name}_FILE={path!r}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return SecretStr(text.removesuffix("\n").removesuffix("\r"))
