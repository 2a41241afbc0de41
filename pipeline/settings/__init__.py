"""Typed, frozen settings read once at start from ``SPANSTREAM_*`` environment variables.

:class:`Settings` gathers one group per concern, each in its own module with its
options (environment variable and default beside each field) and its rules:
:mod:`~pipeline.settings.kafka`, :mod:`~pipeline.settings.store`,
:mod:`~pipeline.settings.streams` (topics, group), :mod:`~pipeline.settings.windows`,
:mod:`~pipeline.settings.sampling`, :mod:`~pipeline.settings.limits`,
:mod:`~pipeline.settings.web`, :mod:`~pipeline.settings.graph`,
:mod:`~pipeline.settings.incidents`, :mod:`~pipeline.settings.slo` and
:mod:`~pipeline.settings.delivery` (``alerts forward``). :func:`load_settings` reads and
validates them all and raises :class:`~pipeline.errors.ConfigError` naming the offending
variable and value; secrets (:mod:`~pipeline.settings.secret`) never show in either.

>>> s = load_settings({"SPANSTREAM_WINDOW_SECONDS": "30"})
>>> s.window_seconds, s.kafka_bootstrap
(30, '127.0.0.1:9092')
>>> load_settings({"SPANSTREAM_WINDOW_SECONDS": "soon"})
Traceback (most recent call last):
...
pipeline.errors.ConfigError: SPANSTREAM_WINDOW_SECONDS='soon': expected an integer
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from pipeline.settings import (
    delivery,
    graph,
    incidents,
    kafka,
    limits,
    sampling,
    slo,
    store,
    streams,
    web,
    windows,
)
from pipeline.settings.delivery import DeliveryOptions
from pipeline.settings.env import convert, env_name
from pipeline.settings.graph import GraphOptions
from pipeline.settings.incidents import IncidentOptions
from pipeline.settings.kafka import KafkaOptions
from pipeline.settings.limits import LimitOptions
from pipeline.settings.sampling import SamplingOptions
from pipeline.settings.secret import SecretStr, is_secret_type, secret_from_env
from pipeline.settings.slo import SloOptions
from pipeline.settings.store import StoreOptions, refuse_password_in_argv, with_clickhouse_password
from pipeline.settings.streams import StreamOptions
from pipeline.settings.web import WebOptions
from pipeline.settings.windows import WindowOptions


# A dataclass takes its bases' fields from the last base to the first: Kafka's come first.
@dataclass(frozen=True)
class Settings(
    DeliveryOptions,
    SloOptions,
    IncidentOptions,
    GraphOptions,
    WebOptions,
    LimitOptions,
    SamplingOptions,
    WindowOptions,
    StreamOptions,
    StoreOptions,
    KafkaOptions,
):
    """All worker and CLI settings; each group's fields give the variable and default."""


#: Each group's rules, in the order they are checked (the first failure is reported).
_CHECKS: tuple[Callable[[Any], None], ...] = (
    windows.check,
    incidents.check,
    sampling.check,
    limits.check,
    streams.check,
    store.check,
    web.check,
    delivery.check,
    slo.check,
    graph.check,
    kafka.check,
)
_SECRET_FIELDS = {f.name for f in fields(Settings) if is_secret_type(f.type)}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``), apply overrides (command-line
    options), validate.

    ``SPANSTREAM_CLICKHOUSE_PASSWORD`` is put into ``clickhouse_url`` (percent-encoded),
    so every store client gets it from one place. A password in the ``--url`` option is
    refused: any local user can read a command line (``ps``).
    """
    env = os.environ if environ is None else environ
    refuse_password_in_argv(overrides.get("clickhouse_url"))
    values = _from_env(env)
    for key, value in overrides.items():
        if value is not None:
            wrap = key in _SECRET_FIELDS and not isinstance(value, SecretStr)
            values[key] = SecretStr(value) if wrap else value
    settings = with_clickhouse_password(Settings(**values))
    for check in _CHECKS:
        check(settings)
    return settings


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The fields whose variable (or, for a secret, its ``_FILE``) is set, converted."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = env_name(f.name)
        if f.name in _SECRET_FIELDS:
            secret = secret_from_env(env, name)
            if secret is not None:
                values[f.name] = secret
        elif name in env:
            values[f.name] = convert(f.type, name, env[name])
    return values
