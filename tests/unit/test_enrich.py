"""Enricher: operation normalization, error flag, attribute caps, cardinality bound."""

from __future__ import annotations

import pytest

from pipeline.enrich import (
    DROPPED_ATTRIBUTES_KEY,
    TRUNCATED_VALUES_KEY,
    EnrichConfig,
    Enricher,
    normalize_name,
    operation_for,
)


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("/users/123/orders/9", "/users/{id}/orders/{id}"),
        ("/users/123?expand=true&x=1", "/users/{id}"),
        ("/u/550e8400-e29b-41d4-a716-446655440000", "/u/{id}"),
        ("/u/550e8400e29b41d4a716446655440000", "/u/{id}"),
        ("/blobs/5f2a9c3e", "/blobs/{id}"),
        ("/blobs/deadbeef", "/blobs/deadbeef"),
        ("/blobs/abc123", "/blobs/abc123"),
        ("/days/2024-05-01", "/days/{id}"),
        ("/hosts/10.0.0.1", "/hosts/{id}"),
        ("/t/eyJhbGciOiJIUzI1NiJ9abc123", "/t/{id}"),
        ("/api/v2/items", "/api/v2/items"),
        ("GET /items/42", "GET /items/{id}"),
        ("process order 12345", "process order {id}"),
        ("kafka.consume orders", "kafka.consume orders"),
        ("key=1234&other=5", "key={id}&other={id}"),
        ("", ""),
    ],
)
def test_normalize_name(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


def test_normalization_cache_is_bounded() -> None:
    assert normalize_name.cache_info().maxsize is not None


@pytest.mark.parametrize(
    ("span_name", "attributes", "operation"),
    [
        ("GET", {"http.request.method": "GET", "http.route": "/users/{id}"}, "GET /users/{id}"),
        ("GET /x", {"http.method": "POST", "http.route": "/orders"}, "POST /orders"),
        ("GET", {"http.request.method": "GET", "url.path": "/users/5"}, "GET /users/{id}"),
        ("GET", {"http.method": "GET", "http.target": "/a/7?q=1"}, "GET /a/{id}"),
        ("GET", {"http.request.method": "GET", "url.full": "https://h:1/p/8?x"}, "GET /p/{id}"),
        ("GET", {"http.method": "GET", "http.url": "http://h"}, "GET"),
        ("GET /c/9", {"http.request.method": "GET"}, "GET /c/{id}"),
        ("x", {"rpc.system": "grpc", "rpc.service": "a.B", "rpc.method": "C"}, "a.B/C"),
        ("a.B/C", {"rpc.system": "grpc"}, "a.B/C"),
        ("/svc/12345678", {"rpc.system": "grpc"}, "/svc/12345678"),
        ("SELECT 1", {"db.system": "mysql", "db.operation": "SELECT"}, "SELECT"),
        ("SELECT 1", {"db.system.name": "pg", "db.operation.name": "SELECT"}, "SELECT"),
        ("query 123", {"db.system": "mysql"}, "query {id}"),
        ("job 77", {}, "job {id}"),
    ],
)
def test_operation_for(span_name: str, attributes: dict[str, str], operation: str) -> None:
    assert operation_for(span_name, attributes) == operation


@pytest.mark.parametrize(
    ("kind", "status", "attributes", "is_error"),
    [
        ("Internal", "Error", {}, True),
        ("Server", "Unset", {}, False),
        ("Server", "Ok", {}, False),
        ("Server", "Unset", {"http.response.status_code": "500"}, True),
        ("Server", "Unset", {"http.status_code": "503"}, True),
        ("Server", "Unset", {"http.response.status_code": "499"}, False),
        ("Server", "Unset", {"http.response.status_code": "5xx"}, False),
        ("Client", "Unset", {"http.response.status_code": "502"}, False),
        ("Client", "Error", {"http.response.status_code": "502"}, True),
        ("Consumer", "Unset", {"http.status_code": "500"}, False),
    ],
)
def test_error_flag(kind: str, status: str, attributes: dict[str, str], is_error: bool) -> None:
    _, flag, _ = Enricher().derive("svc", "op", kind, status, attributes)
    assert flag is is_error


def test_small_attributes_pass_through_unchanged() -> None:
    attributes = {"b": "1", "a": "2"}
    assert Enricher().cap_attributes(attributes) is attributes


def test_count_cap_keeps_first_keys_in_sorted_order() -> None:
    enricher = Enricher(EnrichConfig(max_span_attributes=3))
    capped = enricher.cap_attributes({k: "v" for k in ["e", "a", "d", "b", "c"]})
    assert capped == {"a": "v", "b": "v", "c": "v", DROPPED_ATTRIBUTES_KEY: "2"}


def test_value_cap_truncates_and_counts() -> None:
    enricher = Enricher(EnrichConfig(max_attribute_value_length=4))
    capped = enricher.cap_attributes({"x": "abcdef", "y": "abcd", "z": "éééééé"})
    assert capped == {"x": "abcd", "y": "abcd", "z": "éééé", TRUNCATED_VALUES_KEY: "2"}


def test_default_limits() -> None:
    config = EnrichConfig()
    assert (config.max_span_attributes, config.max_attribute_value_length) == (128, 4096)
    assert config.max_operations_per_service == 500
    assert config.overflow_operation == "__overflow__"


def test_operations_beyond_the_limit_map_to_overflow_per_service() -> None:
    enricher = Enricher(EnrichConfig(max_operations_per_service=2))
    ops = [enricher.derive("a", name, "Internal", "Unset", {})[0] for name in ["x", "y", "z", "x"]]
    assert ops == ["x", "y", "__overflow__", "x"]
    assert enricher.derive("b", "z", "Internal", "Unset", {})[0] == "z"
    assert enricher.operations("a") == frozenset({"x", "y"})


def test_services_beyond_the_limit_map_to_the_overflow_service() -> None:
    enricher = Enricher(EnrichConfig(max_services=1))
    assert enricher.derive("a", "x", "Internal", "Unset", {})[0] == "x"
    assert enricher.derive("b", "y", "Internal", "Unset", {})[0] == "y"
    assert [enricher.series_service(s) for s in ("a", "b", "c")] == ["a"] + ["__overflow__"] * 2
    assert enricher.operations("b") == frozenset()
    assert enricher.operations("__overflow__") == frozenset({"y"})
    assert enricher.admitted_services == 1


def test_a_flood_of_services_keeps_series_bounded() -> None:
    """100k distinct service names make at most max_services + 1 series services."""
    enricher = Enricher(EnrichConfig(max_services=50, max_operations_per_service=10))
    series = set()
    for n in range(100_000):
        service = f"flood-{n}"
        op = enricher.derive(service, f"op {n % 997}x", "Internal", "Unset", {})[0]
        series.add((enricher.series_service(service), op))
    assert len({s for s, _ in series}) == 51
    assert len(series) <= 51 * 11
    assert len(enricher._operations) == 51


def test_the_default_service_bound() -> None:
    assert EnrichConfig().max_services == 1_000
    assert EnrichConfig().overflow_service == "__overflow__"


def test_ids_in_names_do_not_consume_the_operation_budget() -> None:
    enricher = Enricher(EnrichConfig(max_operations_per_service=1))
    ops = {enricher.derive("a", f"GET /u/{n}", "Server", "Unset", {})[0] for n in range(100)}
    assert ops == {"GET /u/{id}"}
