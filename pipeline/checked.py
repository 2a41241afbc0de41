"""Checked parsing of untrusted JSON values: stored state read back from Kafka.

The window stage's tables are restored from changelog topics, which anyone
allowed to write a topic can append to, so what they hold is parsed like any
other input: :func:`parse_json` (bounded bytes, JSON only: never pickle), then
helpers that check each value's type, length, range and finiteness and raise
:class:`StateError` with a short fixed ``reason`` for the rejection counter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: A count in a state: learned windows, streaks, masses. 2**53 keeps it exact as a JSON double.
MAX_COUNT = 2**53


class StateError(ValueError):
    """A stored state that does not parse; nothing of it was used.

    ``reason`` is one of a few fixed labels (the rejection counter's label):
    ``bad_json``, ``bad_key``, ``legacy_pickle``, ``version``, ``kind``, ``schema``,
    ``unusable`` (loaded, then broke its model).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def record(value: object, where: str, keys: Sequence[str]) -> Mapping[str, Any]:
    """``value`` as a dict with exactly ``keys`` (a missing or an extra key is an error).

    >>> record({"a": 1}, "x", ["a"])["a"]
    1
    """
    if not isinstance(value, dict):
        raise StateError("schema", f"{where}: expected an object, got {type(value).__name__}")
    if set(value) != set(keys):
        raise StateError("schema", f"{where}: keys {sorted(map(str, value))} != {sorted(keys)}")
    return value


def header(value: object, kind: str, version: int, keys: Sequence[str]) -> Mapping[str, Any]:
    """A detector state's dict, after checking its ``kind`` and format version ``v``."""
    if not isinstance(value, dict):
        raise StateError("schema", f"{kind}: expected an object, got {type(value).__name__}")
    if value.get("kind") != kind:
        raise StateError("kind", f"stored {str(value.get('kind'))[:40]!r}, expected {kind!r}")
    if value.get("v") != version:
        raise StateError("version", f"{kind} state version {str(value.get('v'))[:20]!r}")
    return record(value, kind, ["kind", "v", *keys])


def number(value: object, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite int or float (not a bool) within ``[lo, hi]``.

    >>> number(2, "x")
    2.0
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StateError("schema", f"{where}: expected a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out) or not lo <= out <= hi:
        raise StateError("schema", f"{where}: {out!r} is not finite within [{lo}, {hi}]")
    return out


def count(value: object, where: str, hi: int = MAX_COUNT) -> int:
    """An int (not a bool) in ``[0, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise StateError("schema", f"{where}: expected an int in [0, {hi}], got {value!r:.40}")
    return value


def flag(value: object, where: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise StateError("schema", f"{where}: expected a boolean, got {type(value).__name__}")
    return value


def numbers(
    value: object, where: str, max_len: int, lo: float = -math.inf, hi: float = math.inf
) -> list[float]:
    """A list of at most ``max_len`` finite numbers (checked before reading any element)."""
    if not isinstance(value, list | tuple):
        raise StateError("schema", f"{where}: expected a list, got {type(value).__name__}")
    if len(value) > max_len:
        raise StateError("schema", f"{where}: {len(value)} items, at most {max_len}")
    return [number(v, where, lo, hi) for v in value]


def items(value: object, where: str, length: int) -> Sequence[Any]:
    """A list of exactly ``length`` items (unchecked: the caller parses each).

    Tuples pass too: a state not yet through JSON (a dict store in tests) holds them.
    """
    if not isinstance(value, list | tuple) or len(value) != length:
        got = len(value) if isinstance(value, list | tuple) else type(value).__name__
        raise StateError("schema", f"{where}: expected a list of {length}, got {got}")
    return value


def per_name(
    value: object, where: str, names: Sequence[str], parse: Callable[[object, str], Any]
) -> dict[str, Any]:
    """A dict keyed by exactly ``names``, each value parsed by ``parse(value, where)``."""
    data = record(value, where, names)
    return {name: parse(data[name], f"{where}.{name}") for name in names}


def some_names(
    value: object, where: str, names: Sequence[str], parse: Callable[[object, str], Any]
) -> dict[str, Any]:
    """A dict keyed by a subset of ``names``, each value parsed by ``parse(value, where)``."""
    if not isinstance(value, dict) or not set(value) <= set(names):
        raise StateError("schema", f"{where}: expected an object keyed by some of {list(names)}")
    return {name: parse(v, f"{where}.{name}") for name, v in value.items()}


#: Largest stored state accepted, in bytes (a series' detector state is a few KB; an
#: ``hst`` one ~60 KB): a bound on what one record can make a worker parse.
MAX_STATE_BYTES = 4 * 2**20


def parse_json(blob: bytes) -> Any:
    """JSON bytes as Python values; ``StateError("bad_json")`` for anything else.

    >>> parse_json(b'{"v": 2}')
    {'v': 2}
    """
    if not isinstance(blob, bytes | bytearray):
        raise StateError("bad_json", f"expected bytes, got {type(blob).__name__}")
    if len(blob) > MAX_STATE_BYTES:
        raise StateError("bad_json", f"{len(blob)} bytes, at most {MAX_STATE_BYTES}")
    try:
        return json.loads(blob)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise StateError("bad_json", str(exc)[:200]) from None


def to_json(value: Any) -> bytes:
    """Compact JSON bytes (non-finite floats are written, and rejected when read back)."""
    return json.dumps(value, separators=(",", ":")).encode()


def int64(value: object, where: str) -> int:
    """A signed 64-bit int (not a bool): nanosecond times, as ClickHouse stores them."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise StateError("schema", f"{where}: expected a 64-bit int, got {value!r:.40}")
    return value


def text(value: object, where: str, limit: int = 1024) -> str:
    """A str of at most ``limit`` characters (service, operation, metric names)."""
    if not isinstance(value, str) or len(value) > limit:
        raise StateError("schema", f"{where}: expected a str of at most {limit} characters")
    return value
