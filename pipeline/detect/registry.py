"""Build detectors by name with ``key=value`` parameter overrides (CLI and configuration)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pipeline.detect.base import WINDOW_SPECS, Detector, FeatureSpec
from pipeline.detect.combined import CombinedConfig, CombinedDetector, RandomConfig, RandomDetector
from pipeline.detect.hst import HstConfig, HstDetector
from pipeline.detect.red import RED_SPECS, RedConfig, RedDetector
from pipeline.detect.residual import RobustConfig, RobustDetector, SeasonalConfig, SeasonalDetector
from pipeline.detect.tail import TailConfig, TailDetector

DETECTORS = ("robust", "red", "seasonal", "hst", "combined", "tail", "random")
CONFIGS: dict[str, type] = {
    "robust": RobustConfig,
    "red": RedConfig,
    "seasonal": SeasonalConfig,
    "hst": HstConfig,
    "tail": TailConfig,
    "random": RandomConfig,
}
COMBINED_MEMBERS = ("robust", "hst")
"""Members of ``combined``; chosen from the evaluation table (see README.md)."""


def make_config(cls: type, params: Mapping[str, str]) -> Any:
    """A config dataclass with fields overridden from strings, converted to each field's type.

    >>> make_config(RobustConfig, {"threshold": "5"}).threshold
    5.0
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in params.items():
        if key not in fields:
            raise KeyError(f"unknown parameter {key!r} (known: {', '.join(sorted(fields))})")
        kind: Any = type(fields[key].default)
        try:
            values[key] = kind(raw)
        except ValueError as exc:
            raise ValueError(f"parameter {key}={raw!r} is not a valid {kind.__name__}") from exc
    return cls(**values)


def build_detector(
    name: str,
    params: Mapping[str, str] | None = None,
    specs: tuple[FeatureSpec, ...] = WINDOW_SPECS,
) -> Detector:
    """A fresh detector. For ``combined``, parameters apply to every member that has them.

    >>> build_detector("robust", {"warmup": "3"}).config.warmup
    3
    """
    params = dict(params or {})
    if name == "combined":
        members = tuple(
            build_detector(m, params_for(CONFIGS[m], params), specs) for m in COMBINED_MEMBERS
        )
        return CombinedDetector(members, CombinedConfig())
    if name not in CONFIGS:
        raise KeyError(f"unknown detector {name!r} (known: {', '.join(DETECTORS)})")
    config = make_config(CONFIGS[name], params)
    if name == "robust":
        return RobustDetector(config, specs)
    if name == "red":
        return RedDetector(config, RED_SPECS if specs is WINDOW_SPECS else specs)
    if name == "seasonal":
        return SeasonalDetector(config, specs)
    if name == "hst":
        return HstDetector(config, specs)
    if name == "tail":
        return TailDetector(config, specs)
    return RandomDetector(config)


def params_for(cls: type, params: Mapping[str, str]) -> dict[str, str]:
    """The subset of ``params`` that ``cls`` has; KeyError if no config knows a key.

    >>> params_for(HstConfig, {"warmup": "3", "clip": "2"})
    {'warmup': '3'}
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - {f.name for c in CONFIGS.values() for f in dataclasses.fields(c)}
    if unknown:
        raise KeyError(f"unknown parameter {sorted(unknown)[0]!r}")
    return {k: v for k, v in params.items() if k in known}
