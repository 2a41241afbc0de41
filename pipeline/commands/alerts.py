"""``spanstream alerts tail`` prints the alert topic readably; ``alerts forward`` delivers it."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

from pipeline.printable import printable
from pipeline.settings import load_settings


def register(subparsers: Any) -> None:
    """Add the ``alerts`` subcommand."""
    parser = subparsers.add_parser(
        "alerts", help="read the alert topic", description="Read spanstream's alert topic."
    )
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    tail = sub.add_parser(
        "tail",
        help="print alerts as they arrive (Ctrl-C to stop)",
        description=(
            "Subscribe to the alert topic (SPANSTREAM_ALERT_TOPIC) with a throwaway consumer "
            "group and print one line per alert or incident record, or the JSON message with "
            "--json."
        ),
    )
    tail.add_argument("--bootstrap", help="Kafka bootstrap servers (default: SPANSTREAM_KAFKA)")
    tail.add_argument("--json", action="store_true", help="print the JSON messages")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest retained alert"
    )
    tail.add_argument("--max", type=int, default=0, help="exit after N alerts (default: never)")
    tail.add_argument(
        "--timeout", type=float, default=0, help="exit after S seconds (default: never)"
    )
    tail.set_defaults(func=run_tail)
    _register_forward(sub)


def _register_forward(sub: Any) -> None:
    forward = sub.add_parser(
        "forward",
        help="deliver alerts to Alertmanager and/or a webhook (SIGTERM to stop)",
        description=(
            "Read the alert topic (consumer group SPANSTREAM_DELIVERY_GROUP) and post each "
            "alert to Alertmanager's v2 API (SPANSTREAM_ALERTMANAGER_URL) and/or a webhook "
            "(SPANSTREAM_WEBHOOK_URL, the alert JSON as is). At least once: an offset is "
            "committed only after every receiver accepted the alert or it went to the "
            "dead-letter topic (SPANSTREAM_DELIVERY_DLQ_TOPIC); 5xx and unreachable "
            "receivers are retried with backoff for as long as it takes. Credentials come "
            "from SPANSTREAM_ALERTMANAGER_PASSWORD / _BEARER_TOKEN (or their _FILE), "
            "never from options. Settings: docs/settings.md#alert-delivery."
        ),
    )
    forward.add_argument("--bootstrap", help="Kafka bootstrap servers (default: SPANSTREAM_KAFKA)")
    forward.add_argument(
        "--alertmanager-url",
        help="Alertmanager base URL, e.g. http://127.0.0.1:9093 (default: "
        "SPANSTREAM_ALERTMANAGER_URL; empty: none)",
    )
    forward.add_argument(
        "--webhook-url", help="generic webhook URL (default: SPANSTREAM_WEBHOOK_URL; empty: none)"
    )
    forward.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus metrics port (default: SPANSTREAM_DELIVERY_METRICS_PORT, 9465; 0: off)",
    )
    forward.add_argument(
        "--from-beginning",
        action="store_true",
        help="a new consumer group delivers every retained alert (default: only new ones; "
        "alerts still firing are re-posted to Alertmanager either way)",
    )
    forward.set_defaults(func=run_forward)


def run_forward(args: argparse.Namespace) -> int:
    """Deliver alerts until SIGTERM/SIGINT."""
    from pipeline.delivery.run import forward

    settings = load_settings(
        kafka_bootstrap=args.bootstrap,
        alertmanager_url=args.alertmanager_url,
        webhook_url=args.webhook_url,
        delivery_metrics_port=args.metrics_port,
    )
    return forward(settings, from_beginning=args.from_beginning)


def format_alert(message: dict[str, Any]) -> str:
    r"""One readable line, control characters escaped (:func:`~pipeline.printable.printable`).

    >>> print(format_alert({"status": "firing", "severity": "critical", "window_start":
    ...   "T1", "summary": "shop GET /: p99_ms 900 vs 100",
    ...   "alert_id": "00ff", "version": 1, "exemplar_trace_ids": ["ab"]}))
    T1 CRITICAL firing   shop GET /: p99_ms 900 vs 100 [00ff v1] exemplars: ab
    >>> print(format_alert({"status": "resolved", "severity": "warning", "window_start":
    ...   "T2", "summary": "resolved: shop GET /: p99_ms 900 vs 100",
    ...   "alert_id": "00ff", "version": 2, "exemplar_trace_ids": []}))
    T2 WARNING  resolved shop GET /: p99_ms 900 vs 100 [00ff v2] exemplars: none
    >>> print(format_alert({"status": "firing", "severity": "warning", "window_start": "T3",
    ...   "summary": "x\x1b[2K\rT3 CRITICAL firing all good", "alert_id": "01",
    ...   "version": 1, "exemplar_trace_ids": []}))
    T3 WARNING  firing   x\u001b[2K\u000dT3 CRITICAL firing all good [01 v1] exemplars: none
    """
    exemplars = ", ".join(map(str, message.get("exemplar_trace_ids", []))) or "none"
    status = str(message["status"])
    summary = str(message["summary"]).removeprefix(f"{status}: ")  # status has its own column
    # Names in the summary come from span data: escaped, they cannot drive the terminal.
    return printable(
        f"{message['window_start']} {str(message['severity']).upper():<8} {status:<8} "
        f"{summary} [{message['alert_id']} v{message['version']}] exemplars: {exemplars}"
    )


def format_incident(message: dict[str, Any]) -> str:
    """One readable line for an incident record, control characters escaped.

    >>> print(format_incident({"updated_at": "T4", "status": "opened", "incident_id": "0a",
    ...   "version": 1, "summary": "incident 0a: 3 alerts on web; root cause pay Charge"}))
    T4 INCIDENT opened   incident 0a: 3 alerts on web; root cause pay Charge [0a v1]
    """
    status = str(message["status"])
    summary = str(message["summary"]).removeprefix(f"{status}: ")
    return printable(
        f"{message['updated_at']} INCIDENT {status:<8} {summary} "
        f"[{message['incident_id']} v{message['version']}]"
    )


def read_alert(value: bytes | None) -> dict[str, Any] | None:
    """The alert or incident record a record holds, or None when it is neither (not JSON,
    not the schema): an incident has ``kind: "incident"``."""
    import jsonschema

    from pipeline.alerts import validate_message
    from pipeline.checked import StateError, parse_json
    from pipeline.incidents.records import validate_incident

    try:
        message = parse_json(value or b"")
        if isinstance(message, dict) and message.get("kind") == "incident":
            validate_incident(message)
        else:
            validate_message(message)
    except (StateError, jsonschema.ValidationError):
        return None
    return message if isinstance(message, dict) else None


def run_tail(args: argparse.Namespace) -> int:
    """Consume and print until --max, --timeout or Ctrl-C."""
    from confluent_kafka import Consumer

    from pipeline.kafka_client import RefusalWatch, check_topics, librdkafka_config

    settings = load_settings(kafka_bootstrap=args.bootstrap)
    refused = RefusalWatch()
    consumer = Consumer(
        {
            **librdkafka_config(settings.kafka_bootstrap, settings.kafka_security),
            "error_cb": refused,
            # Refusals surface once, as the error line; librdkafka's retries are noise here.
            "log_level": 2,
            "group.id": f"spanstream-alerts-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            "enable.auto.commit": False,
        }
    )
    check_topics(consumer, [settings.alert_topic], refused)
    consumer.subscribe([settings.alert_topic])
    seen = 0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while (not args.max or seen < args.max) and (
            deadline is None or time.monotonic() < deadline
        ):
            record = consumer.poll(0.5)
            if record is None or record.error() is not None:
                continue
            message = read_alert(record.value())
            if message is None:  # the topic is writable by others: skip, never stop
                where = f"{record.topic()}[{record.partition()}]@{record.offset()}"
                print(f"skipped {where}: not an alert message", file=sys.stderr, flush=True)
                continue
            line = format_incident if message.get("kind") == "incident" else format_alert
            print(json.dumps(message) if args.json else line(message), flush=True)
            seen += 1
    finally:
        consumer.close()
    return 0
