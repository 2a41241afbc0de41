"""The worker's metrics: what a scrape of them costs."""

from __future__ import annotations

from prometheus_client import generate_latest

from pipeline import metrics


def test_a_labelled_counter_child_adds_no_created_sample() -> None:
    metrics.SPANS_IN.labels(service="created-probe").inc()
    lines = [
        line
        for line in generate_latest().decode().splitlines()
        if 'service="created-probe"' in line
    ]
    assert lines == ['spanstream_spans_in_total{service="created-probe"} 1.0']
