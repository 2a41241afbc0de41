"""Schema as code: numbered ``schemas/clickhouse/NNNN_name.sql`` files applied in order.

Planning is pure (:func:`plan`): given the files and what
``spanstream_schema_migrations`` records, it returns the pending migrations or
raises :class:`~pipeline.errors.MigrationError` when an applied file was
edited or removed. :func:`migrate` does the I/O around it.

A migration's checksum is the SHA-256 of its raw text, taken before
rendering: placeholders such as ``{{TTL toDate(Timestamp)}}`` are filled from
settings at apply time (:func:`render`), so a different ``SPANSTREAM_TTL_DAYS``
is not an "edit". Statements end with ``;`` at the end of a line and should
be idempotent (``IF NOT EXISTS``): a migration that fails half-way is retried
whole on the next run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import MigrationError
from pipeline.store.base import Store

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "clickhouse"
HISTORY_TABLE = "spanstream_schema_migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TTL = re.compile(r"\{\{TTL ([^{}]+)\}\}")


@dataclass(frozen=True)
class Migration:
    """One migration file: ``version`` and ``name`` come from ``NNNN_name.sql``."""

    version: int
    name: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the raw file text (before rendering)."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    """A row of ``spanstream_schema_migrations``."""

    version: int
    name: str
    checksum: str


def load_migrations(directory: Path = SCHEMA_DIR) -> list[Migration]:
    """Read every ``NNNN_name.sql`` in ``directory``, sorted by version."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_snake.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{path}: version {version} also used by {found[version].filename}"
            )
        found[version] = Migration(version, match.group(2), path.name, path.read_text())
    return [found[v] for v in sorted(found)]


def plan(available: Sequence[Migration], applied: Iterable[Applied]) -> list[Migration]:
    """The migrations still to apply, in order; refuses edited, missing or out-of-order files.

    >>> m1, m2 = Migration(1, "a", "0001_a.sql", "x;"), Migration(2, "b", "0002_b.sql", "y;")
    >>> [m.filename for m in plan([m1, m2], [Applied(1, "a", m1.checksum)])]
    ['0002_b.sql']
    >>> plan([m1, m2], [Applied(1, "a", "0" * 64)])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.MigrationError: 0001_a.sql was edited after it was applied ...
    """
    by_version = {m.version: m for m in available}
    done = {a.version: a for a in applied}
    for version, record in sorted(done.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"{version:04d}_{record.name}.sql was applied but is missing from the schema dir"
            )
        if migration.checksum != record.checksum:
            raise MigrationError(
                f"{migration.filename} was edited after it was applied (checksum "
                f"{record.checksum[:12]} recorded, now {migration.checksum[:12]}); "
                "add a new migration instead"
            )
    pending = [m for m in available if m.version not in done]
    newest = max(done, default=0)
    late = [m.filename for m in pending if m.version < newest]
    if late:
        raise MigrationError(f"{', '.join(late)} older than applied version {newest:04d}")
    return pending


def render(sql: str, ttl_days: int) -> str:
    """Fill ``{{TTL expr}}`` placeholders: nothing for 0 days, else a TTL clause.

    >>> render("ORDER BY x\\n{{TTL toDate(Timestamp)}}\\n", 0)
    'ORDER BY x\\n\\n'
    >>> render("{{TTL toDate(Timestamp)}}", 7)
    'TTL toDate(Timestamp) + toIntervalDay(7)'
    """
    if ttl_days < 0:
        raise MigrationError(f"ttl_days={ttl_days}: must be >= 0")
    clause = (lambda m: f"TTL {m.group(1)} + toIntervalDay({ttl_days})") if ttl_days else ""
    return _TTL.sub(clause, sql)


def split_statements(sql: str) -> list[str]:
    """Statements of a migration: ``--`` comment lines dropped, split at a line-final ``;``.

    >>> split_statements("-- hi\\nCREATE TABLE a (x UInt8)\\nENGINE = Log;\\n\\nSELECT 1;\\n")
    ['CREATE TABLE a (x UInt8)\\nENGINE = Log', 'SELECT 1']
    """
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` did (or would do, with ``dry_run``)."""

    applied: list[Migration]
    total: int
    dry_run: bool

    def summary(self) -> str:
        """One line for the CLI."""
        if not self.applied:
            return f"schema up to date ({self.total} migrations)"
        names = ", ".join(m.filename for m in self.applied)
        verb = "would apply" if self.dry_run else "applied"
        return f"{verb} {len(self.applied)} of {self.total} migrations: {names}"


def migrate(
    store: Store, directory: Path = SCHEMA_DIR, ttl_days: int = 0, dry_run: bool = False
) -> MigrationReport:
    """Apply pending migrations in order, recording each in ``spanstream_schema_migrations``."""
    available = load_migrations(directory)
    if not dry_run:
        _ensure_history(store)
    pending = plan(available, _applied(store, dry_run))
    for migration in pending:
        if dry_run:
            log.info("would apply %s", migration.filename)
            continue
        _apply(store, migration, ttl_days)
    return MigrationReport(applied=pending, total=len(available), dry_run=dry_run)


def _ensure_history(store: Store) -> None:
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (version UInt32, name String, "
        "checksum String, applied_at DateTime) ENGINE = MergeTree ORDER BY version"
    )


def _applied(store: Store, dry_run: bool) -> list[Applied]:
    if dry_run:
        exists = store.query(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() "
            "AND name = {name:String}",
            {"name": HISTORY_TABLE},
        )
        if not exists[0][0]:
            return []
    rows = store.query(f"SELECT version, name, checksum FROM {HISTORY_TABLE} ORDER BY version")
    return [Applied(int(v), str(n), str(c)) for v, n, c in rows]


def _apply(store: Store, migration: Migration, ttl_days: int) -> None:
    for statement in split_statements(render(migration.sql, ttl_days)):
        try:
            store.execute(statement)
        except MigrationError:
            raise
        except Exception as exc:
            raise MigrationError(f"{migration.filename}: {exc}") from None
    store.execute(
        f"INSERT INTO {HISTORY_TABLE} (version, name, checksum, applied_at) VALUES "
        f"({migration.version}, '{migration.name}', '{migration.checksum}', now())"
    )
    log.info("applied %s", migration.filename)
