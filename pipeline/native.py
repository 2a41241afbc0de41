"""The one door to the native extension (``pipeline/otlp/_heads.c``).

Every native function is listed in :data:`PORTS` beside its Python definition, the
reference it is held to (``tests/unit/test_native.py`` compares the two, case by
case). Every other module imports these names from here, never from the extension.

Which one runs:

* the native function, when the extension is built (``pip install``);
* the reference, when it is not, or when ``SPANSTREAM_NATIVE=0`` is set (every
  port, and :class:`SpanHead` too), or when a port's ``native`` flag in
  :data:`PORTS` is False (a one-line change, to measure what a port is worth).

References are named as ``"module:function"`` and imported on first use: they live
in the module that owns the behaviour (the sketch, the policy, the decoder), which
itself imports its native twin from here.

The extension reads nothing private of Python objects: parameters come as
arguments, the attributes the enricher reads come from
:data:`pipeline.enrich.DERIVE_ATTRIBUTES` through ``configure`` below, and the one
port that updates Python objects (``latency_observe``) uses only the members
:mod:`pipeline.sampling.latency` declares for it.

>>> sorted(port.name for port in PORTS)[:3]
['arrow_columns', 'columns', 'latency_observe']
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final, NamedTuple, cast

from pipeline.enrich import DERIVE_ATTRIBUTES
from pipeline.model import SpanHead as PySpanHead

_extension: ModuleType | None
try:
    from pipeline.otlp import _heads as _extension
except ImportError:  # a source tree without the built extension: references only
    _extension = None


class Port(NamedTuple):
    """One native function and its Python definition."""

    name: str
    #: ``"module:function"`` of the Python definition.
    reference: str
    #: Use the native function when the extension is there.
    native: bool = True


#: Every function of the extension, with its reference.
PORTS: Final = (
    Port("valid", "pipeline.otlp.otlp_proto:upb_accepts"),
    Port("scan", "pipeline.otlp.heads:no_scan"),
    Port("columns", "pipeline.sinks.clickhouse:columns_of"),
    Port("arrow_columns", "pipeline.sinks.clickhouse:arrow_columns_of"),
    Port("window_add", "pipeline.windows.partial:window_add_of"),
    Port("per_service", "pipeline.sampling.counters:per_service_of"),
    Port("spanmetrics_add", "pipeline.spanmetrics.counts:spanmetrics_add_of"),
    Port("trace_hash", "pipeline.sampling.probabilistic:trace_hash_of"),
    Port("latency_observe", "pipeline.sampling.latency:latency_observe_of"),
    Port("peer_in_span", "pipeline.graph.read:peer_in_span_of"),
    Port("sketch_counts", "pipeline.graph.histogram:sketch_counts_of"),
)

#: False when ``SPANSTREAM_NATIVE=0`` or the extension is not built.
ENABLED: Final = _extension is not None and os.environ.get("SPANSTREAM_NATIVE", "1") != "0"


def reference(name: str) -> Callable[..., Any]:
    """The Python definition of port ``name``."""
    (port,) = (p for p in PORTS if p.name == name)
    module, function = port.reference.split(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return found


def native(name: str) -> Callable[..., Any] | None:
    """The native function of port ``name``; None without the extension."""
    found: Callable[..., Any] | None = getattr(_extension, name, None)
    return found


def exported() -> frozenset[str]:
    """The names of the extension's functions (empty without it)."""
    return frozenset(
        name
        for name in dir(_extension)
        if type(getattr(_extension, name)).__name__ == "builtin_function_or_method"
    )


def _lazy(name: str) -> Callable[..., Any]:
    """Calls the reference, imported on first call (its module imports this one)."""
    target: list[Callable[..., Any]] = []

    def call(*args: Any) -> Any:
        if not target:
            target.append(reference(name))
        return target[0](*args)

    call.__name__ = call.__qualname__ = name
    return call


def _choose(name: str) -> Callable[..., Any]:
    (port,) = (p for p in PORTS if p.name == name)
    found = native(name) if ENABLED and port.native else None
    return found if found is not None else _lazy(name)


if ENABLED:
    assert _extension is not None
    _extension.configure(DERIVE_ATTRIBUTES)
    #: What the stages read of a span (the native type; see :class:`pipeline.model.SpanHead`).
    SpanHead = cast(type[PySpanHead], _extension.SpanHead)
else:
    SpanHead = PySpanHead

valid = _choose("valid")
scan = _choose("scan")
columns = _choose("columns")
arrow_columns = _choose("arrow_columns")
window_add = _choose("window_add")
per_service = _choose("per_service")
spanmetrics_add = _choose("spanmetrics_add")
trace_hash = _choose("trace_hash")
latency_observe = _choose("latency_observe")
peer_in_span = _choose("peer_in_span")
sketch_counts = _choose("sketch_counts")

__all__ = [
    "ENABLED",
    "PORTS",
    "Port",
    "SpanHead",
    "arrow_columns",
    "columns",
    "exported",
    "latency_observe",
    "native",
    "peer_in_span",
    "per_service",
    "reference",
    "scan",
    "sketch_counts",
    "spanmetrics_add",
    "trace_hash",
    "valid",
    "window_add",
]
