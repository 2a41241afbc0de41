"""``spanstream bench`` end to end on a real broker: a tiny run measures both sides."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.cli import main

pytestmark = pytest.mark.integration

MESSAGES = 500


def test_tiny_run_measures_ceiling_and_pipeline_on_the_same_data(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--bootstrap", kafka_bootstrap, "--messages", str(MESSAGES), "--json"]
    argv += ["--spans-per-trace", "10", "--timeout", "240"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)

    message, ceiling, pipeline = result["message"], result["ceiling"], result["pipeline"]
    spans = message["spans"]
    assert message["messages"] == MESSAGES and spans >= MESSAGES
    assert message["bytes_per_message"] > 0
    assert message["spans_per_message"] == pytest.approx(spans / MESSAGES, abs=0.01)
    # Both sides saw every message and span that was produced.
    assert (pipeline["messages_in"], pipeline["spans_in"]) == (MESSAGES, spans)
    assert pipeline["decode_errors"] == 0
    for side in (ceiling, pipeline):
        assert 0 < side["messages"] <= MESSAGES and side["seconds"] > 0
        assert side["spans_per_s"] > 0 and side["messages_per_s"] > 0
    assert ceiling["decoder"] == "ExportTraceServiceRequest.FromString"
    assert result["ratio"] == pytest.approx(
        pipeline["spans_per_s"] / ceiling["spans_per_s"], rel=1e-3
    )
    # Tail sampling keeps some, never more than came in; memory was observed.
    assert 0 < pipeline["stored_spans"] <= spans
    peaks = (pipeline["rss_sampled_peak_bytes"], pipeline["rss_hwm_bytes"])
    assert min(peaks) > 0 and pipeline["rss_peak_bytes"] == max(peaks)
    assert pipeline["drain_seconds"] >= 0

    # Nothing of the run is left on the broker.
    assert result["run"].startswith("spanstream-bench-")
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(result["run"])]
