"""``spanstream migrate [--url URL] [--dry-run]``: apply pending ClickHouse migrations."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.settings import load_settings


def register(subparsers: Any) -> None:
    """Add the ``migrate`` subcommand."""
    parser = subparsers.add_parser(
        "migrate",
        help="create or upgrade the ClickHouse schema (schemas/clickhouse/*.sql)",
        description=(
            "Apply pending numbered migrations in order and record them in "
            "spanstream_schema_migrations. Re-running is a no-op."
        ),
    )
    parser.add_argument(
        "--url", help="store URL (default: SPANSTREAM_CLICKHOUSE, else chdb:data/chdb)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list pending migrations only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Open the store, migrate, print one summary line."""
    from pipeline.migrate import migrate
    from pipeline.store import open_store

    settings = load_settings(clickhouse_url=args.url)
    store = open_store(settings.clickhouse_url)
    try:
        report = migrate(store, ttl_days=settings.ttl_days, dry_run=args.dry_run)
    finally:
        store.close()
    print(report.summary())
    return 0
