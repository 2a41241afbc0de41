"""BatchingSink: sealed batches, stable tokens, backoff."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from pipeline.errors import BatchRejected, SinkUnavailable
from pipeline.sinks.base import BatchingSink


class FlakyWriter:
    """Fails the first ``failures`` calls, then records what it writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[list[str], str]] = []

    def __call__(self, rows: Sequence[str], token: str) -> None:
        self.calls.append((list(rows), token))
        if self.failures:
            self.failures -= 1
            raise SinkUnavailable("down")


def test_retry_resends_the_same_sealed_batch_with_the_same_token() -> None:
    writer = FlakyWriter(failures=2)
    sink = BatchingSink("spans", writer, str)
    sink.extend(["a", "b"])
    for _ in range(2):
        with pytest.raises(SinkUnavailable):
            sink.flush()
    sink.add("c")  # arrives during the outage: must not join the sealed batch
    assert sink.flush() == ["a", "b"]
    assert sink.flush() == ["c"]
    batches = [(rows, token) for rows, token in writer.calls]
    assert [rows for rows, _ in batches] == [["a", "b"]] * 3 + [["c"]]
    assert len({token for _, token in batches[:3]}) == 1
    assert batches[3][1] != batches[0][1]


def test_backoff_grows_while_failing_and_resets_after_success() -> None:
    writer = FlakyWriter(failures=3)
    sink = BatchingSink("spans", writer, str)
    sink.add("a")
    delays = []
    for _ in range(3):
        with pytest.raises(SinkUnavailable) as info:
            sink.flush()
        delays.append(info.value.retry_after)
    assert delays == sorted(delays) and delays[0] < delays[-1]
    assert sink.flush() == ["a"]
    writer.failures = 1
    sink.add("b")
    with pytest.raises(SinkUnavailable) as info:
        sink.flush()
    assert info.value.retry_after == delays[0]


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [(["a", "b"], ["a", "b"], True), (["a", "b"], ["b", "a"], False), (["a"], ["a", "b"], False)],
)
def test_token_depends_on_content_not_on_a_counter(
    first: list[str], second: list[str], same: bool
) -> None:
    tokens = []
    for rows in (first, second):
        writer = FlakyWriter(failures=0)
        sink = BatchingSink("spans", writer, str)  # a fresh process: no shared counter
        sink.extend(rows)
        sink.flush()
        tokens.append(writer.calls[0][1])
    assert (tokens[0] == tokens[1]) is same


def test_flush_with_nothing_pending_writes_nothing() -> None:
    writer = FlakyWriter(failures=0)
    sink = BatchingSink("spans", writer, str, max_rows=1)
    assert sink.flush() == [] and not sink.full
    sink.add("x")
    assert sink.full and sink.pending_rows == 1
    assert writer.calls == []


class GatedWriter(FlakyWriter):
    """A FlakyWriter that blocks each write until the test opens the gate."""

    def __init__(self, failures: int) -> None:
        super().__init__(failures)
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, rows: Sequence[str], token: str) -> None:
        self.started.set()
        assert self.gate.wait(10), "the test never opened the gate"
        super().__call__(rows, token)


def _poll_until_done(sink: BatchingSink[str]) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        written = sink.poll()
        if not sink.writing:
            return written
    raise AssertionError("the background write never finished")


def test_background_write_is_acknowledged_only_when_it_finished() -> None:
    writer = GatedWriter(failures=0)
    sink = BatchingSink("spans", writer, str, background=True)
    sink.extend(["a", "b"])
    assert sink.flush(background=True) == []
    assert writer.started.wait(10)
    sink.add("c")  # arrives while the batch is written: the next batch
    assert sink.writing and sink.poll() == [] and sink.pending_rows == 3
    writer.gate.set()
    assert _poll_until_done(sink) == ["a", "b"]
    assert sink.pending_rows == 1


def test_background_failure_surfaces_at_poll_and_the_retry_keeps_the_token() -> None:
    writer = GatedWriter(failures=1)
    writer.gate.set()
    sink = BatchingSink("spans", writer, str, background=True)
    sink.extend(["a", "b"])
    sink.flush(background=True)
    with pytest.raises(SinkUnavailable) as failed:
        _poll_until_done(sink)
    assert failed.value.retry_after > 0 and sink.pending_rows == 2
    sink.flush(background=True)
    assert _poll_until_done(sink) == ["a", "b"]
    assert [rows for rows, _ in writer.calls] == [["a", "b"]] * 2
    assert writer.calls[0][1] == writer.calls[1][1]


def test_a_plain_flush_waits_for_the_write_in_flight() -> None:
    writer = GatedWriter(failures=0)
    sink = BatchingSink("spans", writer, str, background=True)
    sink.extend(["a"])
    sink.flush(background=True)
    threading.Timer(0.05, writer.gate.set).start()
    assert sink.flush() == ["a"] and not sink.writing


class PoisonWriter:
    """Refuses any batch holding a row in ``poison`` (as a store refuses a value it cannot hold)."""

    def __init__(self, poison: set[str]) -> None:
        self.poison = poison
        self.calls: list[tuple[list[str], str]] = []
        self.written: list[str] = []

    def __call__(self, rows: Sequence[str], token: str) -> None:
        self.calls.append((list(rows), token))
        bad = self.poison.intersection(rows)
        if bad:
            raise BatchRejected(f"cannot hold {sorted(bad)}")
        self.written.extend(rows)


@pytest.mark.parametrize("background", [False, True])
def test_a_rejected_batch_is_split_until_each_bad_row_is_alone(background: bool) -> None:
    """Issue #12: one row the store refused held every batch behind it, retried forever."""
    writer = PoisonWriter({"r3", "r12"})
    rejected: list[str] = []
    sink = BatchingSink(
        "spans",
        writer,
        str,
        background=background,
        on_rejected=lambda rows, exc: rejected.extend(rows),
    )
    rows = [f"r{i}" for i in range(16)]
    sink.extend(rows)
    rounds = 0
    acked: list[str] = []
    while sink.pending_rows and rounds < 100:
        rounds += 1
        acked += sink.flush(background=background)
        acked += sink.flush()  # waits for a background write, like the loop's next round
    assert sorted(rejected) == ["r12", "r3"]
    assert sorted(writer.written) == sorted(acked) == sorted(set(rows) - {"r3", "r12"})
    assert len(writer.calls) <= 2 * 2 * 4 + 1  # log2(16) levels, two bad rows
    replay = PoisonWriter({"r3", "r12"})
    again = BatchingSink("spans", replay, str, on_rejected=lambda rows, exc: None)
    again.extend(rows)
    while again.pending_rows:
        again.flush()
    assert [token for _, token in replay.calls] == [token for _, token in writer.calls]


def test_without_a_taker_a_rejected_batch_is_retried_like_an_outage() -> None:
    sink = BatchingSink("spans", PoisonWriter({"a"}), str)
    sink.add("a")
    with pytest.raises(SinkUnavailable):
        sink.flush()
    assert sink.pending() == ["a"]
