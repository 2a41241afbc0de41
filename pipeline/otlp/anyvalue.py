"""OTLP ``AnyValue`` -> the string the Collector ClickHouse exporter stores.

The exporter fills its ``Map(String, String)`` columns with pdata's
``pcommon.Value.AsString()`` (checked in opentelemetry-collector
``pdata/pcommon/value.go``, 2025 sources):

- string: as is; bool: ``true``/``false``; int: decimal; empty: ``""``;
- double: Go's ES6-style formatting (``float64AsString``): shortest digits,
  fixed notation unless ``|x| < 1e-6`` or ``|x| >= 1e21``; NaN/Inf become
  ``json: unsupported value: NaN`` (``+Inf``/``-Inf``);
- bytes: standard base64 with padding;
- array / kvlist: Go ``encoding/json`` of the raw value: compact, map keys
  sorted, ``<``, ``>``, ``&``, U+2028/U+2029 escaped, nested bytes as base64,
  and the *empty string* when the value holds a NaN/Inf (Go ignores the
  marshal error). Duplicate kvlist keys: the last one wins, like Go's map.

Both decoders turn nested values into plain Python trees (``dict``, ``list``,
``str``, ``int``, ``float``, ``bool``, ``bytes``, ``None``) and call
:func:`go_json`; scalars go through :func:`go_float` and friends directly.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal

# Nested AnyValue levels accepted (counting the attribute's own value as 1).
# upb's default decode depth limit (100 messages) allows 48 levels inside a
# span attribute; the JSON decoder uses the same bound so both encodings accept
# the same documents.
MAX_ANY_DEPTH = 48

_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_GO_JSON_ESCAPES |= {"\u2028": "\\u2028", "\u2029": "\\u2029"}
_ESCAPE_TABLE = str.maketrans(_GO_JSON_ESCAPES)


class UnsupportedFloat(ValueError):
    """A NaN or infinity inside an array/kvlist: Go's json.Marshal fails on it."""


def go_float(value: float) -> str:
    """Format a double like pdata's ``float64AsString``.

    >>> [go_float(x) for x in (1.0, 0.1, -0.0, 1e20, 1e21, 1.5e-7, 2.5e-5, 123.456)]
    ['1', '0.1', '-0', '100000000000000000000', '1e+21', '1.5e-7', '0.000025', '123.456']
    >>> go_float(float("nan")), go_float(float("-inf"))
    ('json: unsupported value: NaN', 'json: unsupported value: -Inf')
    """
    if math.isnan(value):
        return "json: unsupported value: NaN"
    if math.isinf(value):
        return "json: unsupported value: " + ("+Inf" if value > 0 else "-Inf")
    magnitude = abs(value)
    text = repr(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        # repr already uses an exponent at these magnitudes; Go writes at least
        # two exponent digits, then strips the zero padding of negative ones.
        mantissa, _, exp_text = text.partition("e")
        exponent = int(exp_text)
        if exponent < 0:
            return f"{mantissa}e-{-exponent}"
        return f"{mantissa}e+{exponent:02d}"
    if "e" in text:
        return format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def go_bytes(value: bytes) -> str:
    """Standard base64 with padding, as Go's ``base64.StdEncoding``.

    >>> go_bytes(b"\\x00\\xff")
    'AP8='
    """
    return base64.b64encode(value).decode("ascii")


def go_json(tree: object) -> str:
    """Serialize a raw array/kvlist tree like Go's ``json.Marshal`` (errors -> ``""``).

    >>> go_json({"b": [1, 2.5, True, None], "a": "<x>", "c": b"hi"})
    '{"a":"\\\\u003cx\\\\u003e","b":[1,2.5,true,null],"c":"aGk="}'
    >>> go_json([1.0, float("nan")])
    ''
    """
    try:
        return "".join(_encode(tree))
    except UnsupportedFloat:
        return ""


def _encode(tree: object) -> list[str]:
    out: list[str] = []
    _write(tree, out)
    return out


def _write(node: object, out: list[str]) -> None:
    if isinstance(node, str):
        out.append(_go_string(node))
    elif node is None:
        out.append("null")
    elif node is True:
        out.append("true")
    elif node is False:
        out.append("false")
    elif isinstance(node, int):
        out.append(str(node))
    elif isinstance(node, float):
        if math.isnan(node) or math.isinf(node):
            raise UnsupportedFloat(repr(node))
        out.append(go_float(node))
    elif isinstance(node, bytes):
        out.append('"' + go_bytes(node) + '"')
    elif isinstance(node, dict):
        _write_object(node, out)
    elif isinstance(node, list):
        _write_array(node, out)
    else:
        raise TypeError(f"unexpected node type {type(node).__name__}")


def _write_object(node: dict[str, object], out: list[str]) -> None:
    out.append("{")
    for index, key in enumerate(sorted(node)):
        if index:
            out.append(",")
        out.append(_go_string(key))
        out.append(":")
        _write(node[key], out)
    out.append("}")


def _write_array(node: list[object], out: list[str]) -> None:
    out.append("[")
    for index, item in enumerate(node):
        if index:
            out.append(",")
        _write(item, out)
    out.append("]")


def _go_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).translate(_ESCAPE_TABLE)
