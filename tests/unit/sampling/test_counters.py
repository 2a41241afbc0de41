"""Volume counters and the span size estimate."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.model import SpanEvent, SpanLink
from pipeline.sampling.counters import SamplingStats, span_size
from tests.unit.sampling.spans import span

BASE = span().span
assert BASE is not None


@pytest.mark.parametrize(
    ("changes", "extra"),
    [
        ({}, 0),
        ({"span_attributes": {"http.method": "GET"}}, 14),
        ({"resource_attributes": {"host": "a", "k": ""}}, 6),
        ({"status_message": "boom"}, 4),
        ({"events": (SpanEvent(1, "exception", {"type": "E"}),)}, 8 + 9 + 5),
        ({"links": (SpanLink("a" * 32, "b" * 16, "x=1"),)}, 48 + 3),
    ],
)
def test_span_size_grows_with_content(changes: dict, extra: int) -> None:
    assert span_size(dataclasses.replace(BASE, **changes)) == span_size(BASE) + extra


def test_counters_per_service_and_ratio() -> None:
    stats = SamplingStats()
    spans = [span(service="a"), span(service="a", span_id="2" * 16), span(service="b")]
    stats.record_in(spans)
    stats.record_kept(spans[:1])
    a = stats.services["a"]
    assert (a.spans_in, a.spans_kept) == (2, 1)
    assert stats.kept_ratio("a") == pytest.approx(0.5)
    assert (stats.kept_ratio("b"), stats.kept_ratio("unknown")) == (0.0, 0.0)
