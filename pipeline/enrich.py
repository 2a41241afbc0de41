"""Per-span enrichment: a low-cardinality operation name, an error flag, attribute caps.

The OTLP decoders call :meth:`Enricher.derive` once per span while building it,
so everything here is on the hot path: normalization results are cached and
the common cases (few short attributes, a known operation) return early.

Operation (what RED metrics and anomaly scores are keyed by), first match wins:

1. HTTP spans (``http.request.method`` or legacy ``http.method``):
   ``"METHOD template"`` where the template is ``http.route`` when present (already
   templated by the instrumentation), else the normalized path of ``url.path``,
   ``http.target`` or ``url.full``/``http.url``; without any of those, the
   normalized span name.
2. RPC spans (``rpc.system``): ``"rpc.service/rpc.method"`` when both are set,
   else the span name, unchanged (gRPC method names are already bounded).
3. DB spans (``db.system.name`` or legacy ``db.system``): ``db.operation.name``
   (legacy ``db.operation``) unchanged, else the normalized span name.
4. Anything else: the normalized span name.

Normalization (:func:`normalize_name`) drops a query string and replaces id-like
tokens with ``{id}``: integers, UUIDs, hex ids (>= 8 hex chars with a digit),
digit groups such as dates or IPs, and long mixed tokens (>= 20 chars with a digit).

Cardinality: at most ``max_services`` distinct services are admitted, the first
seen by this Enricher (one per worker); a later new service's spans are keyed by
``overflow_service`` (:meth:`Enricher.series_service`) in every aggregate: RED
windows, Prometheus labels, sampling state. Each service, the overflow one
included, keeps at most ``max_operations_per_service`` distinct operations; later
new ones map to ``overflow_operation``. Stored spans keep their real service
name. Both bounds keep the Enricher's (and everything downstream's) memory fixed.
An answer, once given, never changes: admitted stays admitted, full stays full.

Error flag: status ``Error``; or, for **server** spans only, an HTTP response
status >= 500 (``http.response.status_code`` or legacy ``http.status_code``)
for instrumentations that do not set the status. A client span's 5xx is the
callee's failure and counts only if the instrumentation set status ``Error``.

Attribute caps (span attributes only): when a span has more than
``max_span_attributes`` attributes, the first N keys in **sorted key order**
are kept (deterministic whatever order the producer used) and
``spanstream.dropped_attributes`` records how many were dropped. Values longer
than ``max_attribute_value_length`` characters are cut to that length and
``spanstream.truncated_values`` records how many were cut. The two marker
attributes come on top of the cap. An uncapped span's dict is returned as is.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

#: Every span attribute :func:`operation_for` and :func:`http_server_error` read, and
#: nothing else: the native scan (``pipeline/otlp/_derive.h``) memoises
#: :meth:`Enricher.derive` on these, by position, so the order is part of the contract.
DERIVE_ATTRIBUTES: Final = (
    "http.request.method",
    "http.method",
    "http.route",
    "url.path",
    "http.target",
    "url.full",
    "http.url",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "db.system.name",
    "db.system",
    "db.operation.name",
    "db.operation",
    "http.response.status_code",
    "http.status_code",
)
DROPPED_ATTRIBUTES_KEY: Final = "spanstream.dropped_attributes"
TRUNCATED_VALUES_KEY: Final = "spanstream.truncated_values"

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[^/\s?&=;:,]+")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_HEX_ID = re.compile(r"(?=[^0-9]*[0-9])[0-9a-fA-F]{8,}")
_DIGIT_GROUP = re.compile(r"(?=.*[0-9])[0-9._\-+]+")
_LONG_TOKEN = re.compile(r"(?=.*[0-9])[A-Za-z0-9_\-.~%+]{20,}")
_ID = "{id}"
#: The service and operation name past the cardinality bounds.
OVERFLOW: Final = "__overflow__"


@dataclass(frozen=True, slots=True)
class EnrichConfig:
    """Limits for :class:`Enricher`; the defaults suit a few hundred services.

    ``max_span_attributes`` (128) and ``max_attribute_value_length`` (4096
    characters) cap span attributes; ``max_operations_per_service`` (500)
    bounds distinct operations per service; ``max_services`` (1,000) bounds
    the services admitted; ``overflow_service`` and ``overflow_operation``
    (both "__overflow__") are the names used past either bound.
    """

    max_span_attributes: int = 128
    max_attribute_value_length: int = 4096
    max_operations_per_service: int = 500
    max_services: int = 1_000
    overflow_operation: str = OVERFLOW
    overflow_service: str = OVERFLOW


def _id_like(token: str) -> bool:
    if token.isdigit():
        return True
    if len(token) < 8:
        return False
    return bool(
        _UUID.fullmatch(token)
        or _HEX_ID.fullmatch(token)
        or _DIGIT_GROUP.fullmatch(token)
        or _LONG_TOKEN.fullmatch(token)
    )


def _replace_token(match: re.Match[str]) -> str:
    token = match.group()
    return _ID if _id_like(token) else token


@lru_cache(maxsize=16_384)
def normalize_name(name: str) -> str:
    """Template a span name or URL path: drop the query, replace id-like tokens.

    >>> normalize_name("/users/123/orders/9")
    '/users/{id}/orders/{id}'
    >>> normalize_name("GET /api/items/3f2a9c1e7b?page=2")
    'GET /api/items/{id}'
    >>> normalize_name("/carts/550e8400-e29b-41d4-a716-446655440000/checkout")
    '/carts/{id}/checkout'
    >>> normalize_name("/reports/2024-05-01/v2")
    '/reports/{id}/v2'
    >>> normalize_name("/files/dGhpcyBpcyBhIHRva2VuMTIzNDU2")
    '/files/{id}'
    >>> normalize_name("SELECT orders")
    'SELECT orders'
    """
    cut = name.find("?")
    if cut >= 0:
        name = name[:cut]
    return _TOKEN.sub(_replace_token, name)


def url_path(url: str) -> str:
    """The path part of an absolute URL (``""`` if there is none).

    >>> url_path("https://shop.example:8443/cart/42?x=1")
    '/cart/42?x=1'
    >>> url_path("/already/a/path")
    '/already/a/path'
    """
    scheme = url.find("://")
    if scheme < 0:
        return url
    slash = url.find("/", scheme + 3)
    return url[slash:] if slash >= 0 else ""


def operation_for(span_name: str, attributes: dict[str, str]) -> str:
    """The uncapped operation name of a span (rules in the module docstring).

    Reads only the attributes :data:`DERIVE_ATTRIBUTES` lists.

    >>> operation_for("GET", {"http.request.method": "GET", "http.route": "/users/:id"})
    'GET /users/:id'
    >>> operation_for("GET", {"http.request.method": "GET", "url.path": "/users/77"})
    'GET /users/{id}'
    >>> operation_for("x", {"rpc.system": "grpc", "rpc.service": "shop.Cart", "rpc.method": "Add"})
    'shop.Cart/Add'
    >>> operation_for("SELECT 1", {"db.system.name": "postgresql", "db.operation.name": "SELECT"})
    'SELECT'
    >>> operation_for("process job 42", {})
    'process job {id}'
    """
    method = attributes.get("http.request.method") or attributes.get("http.method")
    if method:
        return _http_operation(method, span_name, attributes)
    if "rpc.system" in attributes:
        service = attributes.get("rpc.service")
        rpc_method = attributes.get("rpc.method")
        return f"{service}/{rpc_method}" if service and rpc_method else span_name
    if "db.system.name" in attributes or "db.system" in attributes:
        db_op = attributes.get("db.operation.name") or attributes.get("db.operation")
        if db_op:
            return db_op
    return normalize_name(span_name)


def _http_operation(method: str, span_name: str, attributes: dict[str, str]) -> str:
    route = attributes.get("http.route")
    if route:
        return f"{method} {route}"
    path = attributes.get("url.path") or attributes.get("http.target")
    if not path:
        full = attributes.get("url.full") or attributes.get("http.url")
        path = url_path(full) if full else ""
    if path:
        return f"{method} {normalize_name(path)}"
    return normalize_name(span_name)


def http_server_error(attributes: dict[str, str]) -> bool:
    """True when the span's HTTP response status is >= 500 (reads :data:`DERIVE_ATTRIBUTES`).

    >>> http_server_error({"http.response.status_code": "503"})
    True
    >>> http_server_error({"http.status_code": "404"}), http_server_error({})
    (False, False)
    """
    code = attributes.get("http.response.status_code") or attributes.get("http.status_code")
    if not code:
        return False
    return code.isdigit() and int(code) >= 500


class Enricher:
    """Derives operation, error flag and capped attributes; holds bounded per-service state."""

    def __init__(self, config: EnrichConfig | None = None) -> None:
        self.config = config or EnrichConfig()
        # Keyed by series service: the admitted ones, plus the overflow one once used.
        self._operations: dict[str, set[str]] = {}
        self._admitted = 0

    def derive(
        self,
        service: str,
        span_name: str,
        kind: str,
        status_code: str,
        span_attributes: dict[str, str],
    ) -> tuple[str, bool, dict[str, str]]:
        """Return ``(operation, is_error, capped_attributes)`` for one span.

        >>> e = Enricher(EnrichConfig(max_operations_per_service=1))
        >>> e.derive("cart", "GET /c/1", "Server", "Unset", {"http.status_code": "500"})[:2]
        ('GET /c/{id}', True)
        >>> e.derive("cart", "other", "Client", "Error", {})[:2]
        ('__overflow__', True)
        """
        series = self.series_service(service)
        operation = self._bounded(series, operation_for(span_name, span_attributes))
        is_error = status_code == "Error" or (
            kind == "Server" and http_server_error(span_attributes)
        )
        return operation, is_error, self.cap_attributes(span_attributes)

    def operations(self, service: str) -> frozenset[str]:
        """The operations seen so far for series ``service`` (without the overflow name)."""
        return frozenset(self._operations.get(service, ()))

    @property
    def admitted_services(self) -> int:
        """How many services hold a slot (the overflow bucket not counted)."""
        return self._admitted

    def series_service(self, service: str) -> str:
        """The name ``service``'s spans are aggregated under: itself, or the overflow name.

        The first ``max_services`` services seen are admitted for this Enricher's
        life; any other maps to ``overflow_service``. :meth:`derive` calls it, so
        calling it again for a derived span's service gives the same answer.

        >>> e = Enricher(EnrichConfig(max_services=1))
        >>> e.series_service("cart"), e.series_service("x-1f3a"), e.series_service("cart")
        ('cart', '__overflow__', 'cart')
        """
        if service in self._operations:
            return service
        overflow = self.config.overflow_service
        if service == overflow or self._admitted >= self.config.max_services:
            if service != overflow and overflow not in self._operations:
                log.warning(
                    "%d services admitted: %s and every later new service count as %s"
                    " (SPANSTREAM_MAX_SERVICES)",
                    self._admitted,
                    service,
                    overflow,
                )
            self._operations.setdefault(overflow, set())
            return overflow
        self._operations[service] = set()
        self._admitted += 1
        return service

    def _bounded(self, service: str, operation: str) -> str:
        known = self._operations[service]
        if operation in known:
            return operation
        if len(known) >= self.config.max_operations_per_service:
            return self.config.overflow_operation
        known.add(operation)
        return operation

    def cap_attributes(self, attributes: dict[str, str]) -> dict[str, str]:
        """Apply the count and value-length caps (see the module docstring).

        >>> e = Enricher(EnrichConfig(max_span_attributes=2, max_attribute_value_length=3))
        >>> capped = e.cap_attributes({"c": "1", "a": "long", "b": "2"})
        >>> capped["a"], capped["b"], "c" in capped
        ('lon', '2', False)
        >>> capped[DROPPED_ATTRIBUTES_KEY], capped[TRUNCATED_VALUES_KEY]
        ('1', '1')
        """
        limit = self.config.max_span_attributes
        max_len = self.config.max_attribute_value_length
        if len(attributes) <= limit and max(map(len, attributes.values()), default=0) <= max_len:
            return attributes
        dropped = max(0, len(attributes) - limit)
        keys = sorted(attributes)[:limit] if dropped else list(attributes)
        capped: dict[str, str] = {}
        truncated = 0
        for key in keys:
            value = attributes[key]
            if len(value) > max_len:
                value = value[:max_len]
                truncated += 1
            capped[key] = value
        if dropped:
            capped[DROPPED_ATTRIBUTES_KEY] = str(dropped)
        if truncated:
            capped[TRUNCATED_VALUES_KEY] = str(truncated)
        return capped
