"""``spanstream topics apply|check|list``: Kafka topics from ``topics/topics.yaml``.

Drift (a topic whose partitions, replication or config differ from its declaration)
is always reported and makes the command exit non-zero; only ``apply --fix`` changes
an existing topic, and only where Kafka allows it (more partitions, topic configs).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.topics.planning import PlanItem

HELP = """\
Kafka topics as code. Each topic is declared once in topics/topics.yaml; entries with a
role (input, dlq, alerts) take their name from SPANSTREAM_INPUT_TOPIC, SPANSTREAM_DLQ_TOPIC
and SPANSTREAM_ALERT_TOPIC, so the worker and the topics always agree.
"""


def register(subparsers: Any) -> None:
    """Add ``topics`` with its ``apply``, ``check`` and ``list`` subcommands."""
    from pipeline.topics.declarations import DEFAULT_TOPICS_FILE

    parser = subparsers.add_parser(
        "topics", help="create and check Kafka topics from topics/topics.yaml", description=HELP
    )
    sub = parser.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    actions = {
        "apply": "create missing topics; report drift (exit 1); --fix repairs what Kafka allows",
        "check": "exit 1 (one line on stderr) if any declared topic is missing or drifted",
        "list": "show each declared topic with its state on the broker",
    }
    for name, text in actions.items():
        action = sub.add_parser(name, help=text, description=text)
        action.add_argument(
            "--file",
            type=Path,
            default=DEFAULT_TOPICS_FILE,
            help="topic declarations (default: the repository's topics/topics.yaml)",
        )
        action.add_argument(
            "--bootstrap", help="Kafka bootstrap servers (default: SPANSTREAM_KAFKA)"
        )
        action.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="seconds to wait for the broker per request (default: 10)",
        )
        if name != "apply":
            action.set_defaults(fix=False)
        else:
            action.add_argument(
                "--fix",
                action="store_true",
                help="also add partitions and set configs on drifted topics "
                "(never removes partitions or changes replication)",
            )
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; returns 0 when every declared topic matches."""
    from pipeline.errors import TopicDriftError
    from pipeline.settings import load_settings
    from pipeline.topics.admin import TopicAdmin
    from pipeline.topics.declarations import load_declarations
    from pipeline.topics.planning import plan, problems
    from pipeline.topics.reconcile import apply

    settings = load_settings(kafka_bootstrap=args.bootstrap)
    decls = load_declarations(args.file, settings)
    admin = TopicAdmin(
        settings.kafka_bootstrap, timeout=args.timeout, security=settings.kafka_security
    )
    if args.topics_command == "apply":
        result = apply(admin, decls, fix=args.fix)
        for name in result.created:
            print(f"created {name}")
        for name in result.fixed:
            print(f"fixed {name}")
        items = list(result.final)
    else:
        items = plan(decls, admin.describe(d.name for d in decls))
    _print_table(items)
    found = problems(items)
    if found and args.topics_command != "list":
        fixable = any(d.fixable for item in items for d in item.drifts)
        hint = "; apply --fix repairs what is fixable" if fixable and not args.fix else ""
        raise TopicDriftError(f"topics differ from {args.file.name}: {'; '.join(found)}{hint}")
    return 0


def _print_table(items: Iterable[PlanItem]) -> None:
    for item in items:
        decl = item.decl
        role = f"[{decl.role}]" if decl.role else ""
        state = {"create": "missing", "ok": "ok", "drift": "DRIFT"}[item.action]
        print(f"{decl.name:<28} {role:<9} {state:<8} partitions={decl.partitions}")
        for drift in item.drifts:
            print(f"    {drift.describe()}")
