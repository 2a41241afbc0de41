"""Limits that bound a worker's memory and its labels whatever the input holds."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings.env import enforce

#: Largest DLQ value: under the DLQ producer's ``message.max.bytes`` (1 MB) with headers.
MAX_DLQ_VALUE_BYTES = 900_000


@dataclass(frozen=True)
class LimitOptions:
    """Buffering, cardinality and record-size limits (environment variable and default)."""

    #: SPANSTREAM_MAX_BUFFERED_TRACES: fetching pauses while this many traces await a
    #: sampling decision or their insert (bounds memory on a backlog or a store outage).
    #: The Collector's tail-sampling ``num_traces`` default; a backlog is read at most
    #: this many traces per decision wait (10,000 capped one worker at ~41k spans/s).
    max_buffered_traces: int = 50_000
    #: SPANSTREAM_MAX_SERVICES: distinct services a worker aggregates by name (the first
    #: seen); spans of later new services count under ``__overflow__`` in RED windows,
    #: metric labels and sampling state (stored spans keep their name).
    max_services: int = 1_000
    #: SPANSTREAM_MAX_OPERATIONS_PER_SERVICE: distinct operations per service (the first
    #: seen); later new ones count as operation ``__overflow__``.
    max_operations_per_service: int = 500
    #: SPANSTREAM_MAX_MESSAGE_BYTES: larger records go to the DLQ undecoded.
    max_message_bytes: int = 4_000_000
    #: SPANSTREAM_DLQ_MAX_VALUE_BYTES: a dead-lettered value longer than this goes to the
    #: DLQ cut to this many bytes, with its size and SHA-256 in headers (the whole record
    #: stays in the input topic at the offset named there). Keep it well under the DLQ
    #: producer's ``message.max.bytes`` (1 MB) and the topic's ``max.message.bytes``.
    dlq_max_value_bytes: int = 524_288


def check(s: LimitOptions) -> None:
    """Every limit positive; a DLQ value fits the DLQ producer's message size."""
    dlq_ok = 0 <= s.dlq_max_value_bytes <= MAX_DLQ_VALUE_BYTES
    enforce(
        s,
        [
            ("max_buffered_traces", s.max_buffered_traces > 0, "must be > 0"),
            ("max_services", s.max_services > 0, "must be > 0"),
            ("max_operations_per_service", s.max_operations_per_service > 0, "must be > 0"),
            ("max_message_bytes", s.max_message_bytes > 0, "must be > 0"),
            ("dlq_max_value_bytes", dlq_ok, f"must be in [0, {MAX_DLQ_VALUE_BYTES}]"),
        ],
    )
