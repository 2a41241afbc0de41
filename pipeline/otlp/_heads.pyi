"""Type stubs of the native extension (pipeline/otlp/_heads.c); import it via pipeline.native."""

from collections.abc import Callable, Sequence
from typing import Any, final

# The native type has the fields and constructor of its Python definition.
from pipeline.model import SpanHead as SpanHead

def scan(
    value: bytes,
    context: Callable[[dict[str, str], str, str, int], Any],
    contexts: dict[bytes, Any],
    memo: dict[bytes, tuple[str, bool, str]],
    derive: Callable[[str, str, int, int, dict[str, str]], tuple[str, bool, str]],
    slow: Callable[[bytes, int, int, Any], SpanHead],
    kv_string: Callable[[bytes], str],
    max_attributes: int,
    max_value_length: int,
    memo_limit: int,
    /,
) -> list[SpanHead] | None: ...

@final
class RedAcc:
    """RED counts of one series in one window (see pipeline.windows.partial)."""

    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def zeros(self) -> int: ...
    @property
    def max_ns(self) -> int: ...
    @property
    def bins(self) -> dict[int, int]: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def exemplars(self) -> tuple[tuple[str, int, bool], ...]: ...
    @property
    def under(self) -> tuple[tuple[int, int], ...]: ...

def window_add(
    spans: Sequence[SpanHead],
    accumulators: dict[tuple[str, str, int], RedAcc],
    window_ns: int,
    watermark_cap_ns: int | None,
    watermark: int | None,
    max_exemplars: int,
    inv_log_gamma: float,
    max_bins: int,
    thresholds: dict[str, Sequence[int]] | None = None,
    /,
) -> int | None: ...
def trace_hash(trace_id: str, salt: bytes, /) -> int: ...
def sketch_counts(
    values_ns: Sequence[int], inv_log_gamma: float, /
) -> tuple[dict[int, int], int, float, float]: ...
def peer_in_span(
    value: bytes, start: int, end: int, needles: tuple[tuple[bytes, bool], ...], max_peer: int, /
) -> tuple[str, bool]: ...
def latency_observe(
    ops: dict[Any, Any],
    spans: Sequence[SpanHead],
    new_op: Callable[[], Any],
    inv_log_gamma: float,
    max_bins: int,
    horizon: float,
    /,
) -> None: ...
def per_service(spans: Sequence[SpanHead], /) -> dict[str, list[int]]: ...
def configure(derive_attributes: tuple[str, ...], /) -> None: ...
def columns(
    heads: list[SpanHead],
    kv_string: Callable[[bytes], str],
    kinds: dict[int, str],
    statuses: dict[int, str],
    /,
) -> dict[str, list[Any]]: ...
def valid(value: bytes, /) -> bool: ...
def arrow_columns(
    heads: list[SpanHead],
    kv_string: Callable[[bytes], str],
    kinds: dict[int, str],
    statuses: dict[int, str],
    /,
) -> dict[str, tuple[Any, ...]]: ...
def spanmetrics_add(
    spans: Sequence[SpanHead],
    acc: dict[tuple[str, str, int, int], list[int]],
    bounds_ns: Sequence[int],
    /,
) -> None: ...
