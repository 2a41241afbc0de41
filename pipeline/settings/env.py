"""Environment variable names of settings fields, conversion of their text, and refusals.

Every error names the variable and the value it holds (a secret's value never).

>>> env_name("kafka_bootstrap"), env_name("window_seconds")
('SPANSTREAM_KAFKA', 'SPANSTREAM_WINDOW_SECONDS')
>>> convert("int", "SPANSTREAM_WEB_PORT", "8080")
8080
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipeline.errors import ConfigError
from pipeline.settings.secret import SecretStr, is_secret_type

T = TypeVar("T")

ENV_PREFIX = "SPANSTREAM_"
#: Fields whose variable is not simply the upper-cased field name.
_ENV_NAMES = {
    "kafka_bootstrap": "KAFKA",
    "clickhouse_url": "CLICKHOUSE",
    "input_topic": "INPUT_TOPIC",
    "dlq_topic": "DLQ_TOPIC",
    "alert_topic": "ALERT_TOPIC",
    "group": "GROUP",
    "partials_topic": "PARTIALS_TOPIC",
}
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

#: One rule of a settings group: (field name, whether it holds, what it must be).
Check = tuple[str, bool, str]


def env_name(field_name: str) -> str:
    """The environment variable for a settings field."""
    return ENV_PREFIX + _ENV_NAMES.get(field_name, field_name.upper())


def convert(field_type: Any, name: str, raw: str) -> Any:
    """The text ``raw`` of variable ``name`` as the field's type (annotations as strings)."""
    if field_type in (int, "int"):
        return _parse(name, raw, int, "an integer")
    if field_type in (float, "float"):
        return _parse(name, raw, float, "a number")
    if field_type in (bool, "bool"):
        return _parse(name, raw.strip().lower(), _BOOLS.__getitem__, "true or false")
    if is_secret_type(field_type):
        return SecretStr(raw)
    return raw


def _parse(name: str, raw: str, kind: Callable[[str], T], what: str) -> T:
    try:
        return kind(raw)
    except (ValueError, KeyError):
        raise ConfigError(f"{name}={raw!r}: expected {what}") from None


def enforce(settings: object, checks: Sequence[Check]) -> None:
    """Raise :class:`ConfigError` for the first check that fails, naming variable and value.

    >>> from types import SimpleNamespace
    >>> enforce(SimpleNamespace(ttl_days=-1), [("ttl_days", False, "must be >= 0")])
    Traceback (most recent call last):
    ...
    pipeline.errors.ConfigError: SPANSTREAM_TTL_DAYS=-1: must be >= 0
    """
    for field_name, ok, rule in checks:
        if not ok:
            value = getattr(settings, field_name)
            shown = "''" if isinstance(value, SecretStr) else repr(value)  # never the secret
            raise ConfigError(f"{env_name(field_name)}={shown}: {rule}")
