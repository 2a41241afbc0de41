"""One exception tree for spanstream.

Every error the CLI can report derives from :class:`SpanstreamError`, so the
CLI prints ``spanstream: error: <message>`` and exits non-zero instead of a
traceback. Stream code raises these with enough context (topic, partition,
offset) to find the offending record.
"""

from __future__ import annotations


class SpanstreamError(Exception):
    """Base of every error spanstream raises on purpose."""

    exit_code = 1


class ConfigError(SpanstreamError):
    """A setting or command-line option is invalid; the message names it and its value."""

    exit_code = 2


class DecodeError(SpanstreamError):
    """A Kafka record could not be decoded into spans; it goes to the dead-letter topic.

    ``reason`` is a short machine-friendly tag (``truncated``, ``too_large``,
    ``bad_json``, ...) used as a header in the dead-letter record and as a
    metric label.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ServiceUnavailable(SpanstreamError):
    """A server spanstream needs (Kafka, ClickHouse) did not answer."""


class SinkUnavailable(ServiceUnavailable):
    """A sink could not write a batch; the caller retries after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BatchRejected(SpanstreamError):
    """The store refused a batch for what is in it (a value it cannot hold), not for being down.

    Retrying the same rows fails the same way, so this is never retried as a
    whole: :class:`~pipeline.sinks.base.BatchingSink` splits the batch to find
    the rows at fault and hands them to its ``on_rejected`` (the ingest loop
    dead-letters them); the other rows are written.
    """


class MigrationError(SpanstreamError):
    """A schema migration failed or an applied migration was edited afterwards."""


class TopicDriftError(SpanstreamError):
    """An existing Kafka topic differs from its declaration in ``topics/``."""


class InputError(SpanstreamError):
    """A user-supplied input file is malformed; the message names the line."""
