"""The forwarder's loop: order, at-least-once commits, retries that block, dead letters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.clock import ManualClock
from pipeline.delivery import forward as forward_module
from pipeline.delivery.backoff import Backoff
from pipeline.delivery.deadletter import DeadLetterSender
from pipeline.delivery.forward import Forwarder
from pipeline.delivery.receivers import Receiver
from pipeline.settings import load_settings
from tests.unit.delivery.fakes import FakeConsumer, FakeProducer, ScriptedPost
from tests.unit.delivery.messages import alert, incident

SETTINGS = load_settings(
    {
        "SPANSTREAM_ALERT_TOPIC": "alerts",
        "SPANSTREAM_ALERTMANAGER_RESEND_SECONDS": "60",
        "SPANSTREAM_DELIVERY_RETRY_INITIAL_SECONDS": "1",
        "SPANSTREAM_DELIVERY_RETRY_MAX_SECONDS": "30",
    }
)
AM = Receiver("alertmanager", "http://am/api/v2/alerts")
HOOK = Receiver("webhook", "http://hook/")


def value(alert_id: str, version: int = 1, status: str = "firing") -> bytes:
    return json.dumps(alert(alert_id=alert_id, version=version, status=status)).encode()


class Rig:
    """A forwarder over a fake consumer; ``run()`` drives it until the topic is drained."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        values: list[bytes | None],
        *,
        script: dict[str, list[int | None]] | None = None,
        receivers: tuple[Receiver, ...] = (AM, HOOK),
        committed: int = -1001,
        dlq_failures: int = 0,
    ) -> None:
        self.clock = ManualClock()
        self.consumer = FakeConsumer(values, self.clock, committed)
        self.producer = FakeProducer(fail=dlq_failures)
        self.post = ScriptedPost(script or {})
        monkeypatch.setattr(forward_module, "post", self.post)
        backoff = Backoff(1, 30)
        self.forwarder = Forwarder(
            consumer=self.consumer,
            dead_letters=DeadLetterSender(self.producer, "alerts-dlq", backoff, lambda: 1.0),
            receivers=list(receivers),
            settings=SETTINGS,
            from_beginning=True,
            clock=self.clock,
            jitter=lambda: 1.0,
        )

    def run(self, max_seconds: float = 10_000) -> None:
        """Until every record is committed (or abandoned) or ``max_seconds`` of manual time."""
        original = self.consumer.on_poll

        def stop_when_done(consumer: FakeConsumer) -> None:
            original(consumer)
            drained = consumer.position_ >= len(consumer.records) and not self.forwarder._backlog
            if (drained and not consumer.paused) or self.clock.now() > max_seconds:
                self.forwarder.stopping.set()

        self.consumer.on_poll = stop_when_done
        self.forwarder.run()


def test_each_alert_goes_to_every_receiver_in_order_then_is_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch, [value("a" * 16), value("b" * 16), value("a" * 16, 2, "resolved")])
    rig.run()
    assert rig.post.alert_ids("alertmanager") == ["a" * 16, "b" * 16, "a" * 16]
    assert rig.post.alert_ids("webhook") == ["a" * 16, "b" * 16, "a" * 16]
    assert rig.consumer.commits == [1, 2, 3]
    # The webhook gets the record's JSON as it is; Alertmanager its postable alert.
    webhook_bodies = [body for name, body, _ in rig.post.calls if name == "webhook"]
    assert webhook_bodies[2] == alert(alert_id="a" * 16, version=2, status="resolved")


def test_a_receiver_down_blocks_its_alert_until_it_returns_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = [None] * 8 + [503] * 4  # refused, then "unavailable", ~5 minutes of backoff
    rig = Rig(
        monkeypatch,
        [value("a" * 16), value("b" * 16)],
        script={"webhook": list(down)},
        receivers=(HOOK,),
    )
    commits_while_down: list[list[int]] = []
    rig.consumer.on_poll = lambda c: commits_while_down.append(list(c.commits))
    rig.run()
    attempts = [status for name, _, status in rig.post.calls]
    assert attempts == [*down, 200, 200]
    assert rig.post.alert_ids("webhook") == ["a" * 16, "b" * 16]
    # Nothing was committed while the first alert waited; b was not posted before a.
    assert all(c == [] for c in commits_while_down[: len(down)])
    assert rig.consumer.commits == [1, 2]
    assert rig.clock.now() > 200  # the backoff waited, at most 30 s a time


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_permanent_refusal_dead_letters_the_record_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    rig = Rig(monkeypatch, [value("a" * 16), value("b" * 16)], script={"webhook": [status]})
    rig.run()
    [letter] = rig.producer.sent
    headers = dict(letter["headers"])
    assert letter["topic"] == "alerts-dlq" and letter["value"] == value("a" * 16)
    assert headers["spanstream.error.reason"] == b"rejected"
    assert headers["spanstream.delivery.receiver"] == b"webhook"
    assert headers["spanstream.delivery.status"] == str(status).encode()
    assert headers["spanstream.source.offset"] == b"0"
    assert rig.consumer.commits == [1, 2]  # the next alert still flows
    assert rig.post.alert_ids("webhook") == ["b" * 16]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(b"\x00garbage", "not_json"), (None, "not_json"), (b'{"alert_id": 1}', "not_alert")],
)
def test_a_record_that_is_no_alert_is_dead_lettered_never_posted(
    monkeypatch: pytest.MonkeyPatch, bad: bytes | None, reason: str
) -> None:
    rig = Rig(monkeypatch, [bad, value("b" * 16)])
    rig.run()
    [letter] = rig.producer.sent
    assert dict(letter["headers"])["spanstream.error.reason"] == reason.encode()
    assert rig.post.alert_ids("alertmanager") == ["b" * 16]
    assert rig.consumer.commits == [1, 2]


def test_a_dead_letter_topic_down_holds_the_commit_until_it_takes_the_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch, [b"junk", value("b" * 16)], dlq_failures=3)
    rig.run()
    assert len(rig.producer.sent) == 1 and rig.consumer.commits == [1, 2]


def test_duplicates_and_older_versions_are_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [
        value("a" * 16, 1),
        value("a" * 16, 1),
        value("a" * 16, 3, "resolved"),
        value("a" * 16, 2),
    ]
    rig = Rig(monkeypatch, values)
    rig.run()
    versions = [body["version"] for name, body, _ in rig.post.calls if name == "webhook"]
    assert versions == [1, 3]
    assert rig.consumer.commits == [1, 2, 3, 4]


@pytest.mark.parametrize("how", ["stop", "revoke"])
def test_a_held_alert_given_up_is_not_committed(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    rig = Rig(monkeypatch, [value("a" * 16)], script={"alertmanager": [503] * 100})

    def interrupt(consumer: FakeConsumer) -> None:
        if rig.clock.now() > 100:
            rig.forwarder.stopping.set() if how == "stop" else consumer.revoke()

    rig.consumer.on_poll = interrupt
    rig.run(max_seconds=500)
    assert rig.consumer.commits == []
    assert rig.post.alert_ids("webhook") == []


def test_records_before_the_committed_offset_rebuild_the_ledger_without_posting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = [value("a" * 16), value("b" * 16), value("b" * 16, 2, "resolved"), value("c" * 16)]
    rig = Rig(monkeypatch, values, committed=3, receivers=(AM,))
    rig.run()
    posted = [[a["labels"]["alert_id"] for a in body] for _, body, _ in rig.post.calls]
    # First the re-post of what still fires after the replay (a; b was resolved), then c,
    # the one record not delivered before.
    assert posted == [["a" * 16], ["c" * 16]]
    assert rig.consumer.commits == [4]


def test_firing_alerts_are_re_posted_every_resend_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch, [value("a" * 16)], receivers=(AM,))
    polls: list[Any] = []

    def keep_going(consumer: FakeConsumer) -> None:
        polls.append(1)
        if rig.clock.now() >= 200:
            rig.forwarder.stopping.set()

    rig.consumer.on_poll = keep_going
    rig.forwarder.run()
    refreshed = [body for _, body, _ in rig.post.calls][1:]
    assert 3 <= len(refreshed) <= 5  # at 0 (after delivery), 60, 120, 180 s
    assert all(body[0]["labels"]["alert_id"] == "a" * 16 for body in refreshed)


def test_a_severity_change_ends_the_alert_of_the_old_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Severity is a label: the warning's Alertmanager alert is ended when it turns critical,
    and the critical one when the resolution arrives (whatever severity that carries)."""
    warning = alert(alert_id="a" * 16, version=1, severity="warning")
    critical = alert(alert_id="a" * 16, version=2, severity="critical")
    resolved = alert(alert_id="a" * 16, version=3, severity="warning", status="resolved")
    values = [json.dumps(m).encode() for m in (warning, critical, resolved)]
    rig = Rig(monkeypatch, values, receivers=(AM,))
    rig.run()
    bodies = [body for _, body, _ in rig.post.calls]
    severities = [[a["labels"]["severity"] for a in body] for body in bodies]
    assert severities == [["warning"], ["critical", "warning"], ["warning", "critical"]]
    # The one ended goes with an endsAt of now, before the new one's (now + 4 resends).
    new, ended = bodies[1]
    assert ended["endsAt"] < new["endsAt"]


def test_incident_records_are_committed_and_counted_never_posted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prometheus_client import REGISTRY

    name = "spanstream_delivery_skipped_total"
    before = REGISTRY.get_sample_value(name, {"kind": "incident"}) or 0.0
    rig = Rig(monkeypatch, [json.dumps(incident()).encode(), value("c" * 16)])
    rig.run()
    assert rig.post.alert_ids("alertmanager") == ["c" * 16]
    assert rig.producer.sent == []
    assert rig.consumer.commits == [1, 2]
    assert REGISTRY.get_sample_value(name, {"kind": "incident"}) == before + 1
