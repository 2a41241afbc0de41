"""Topic declarations: ``topics/topics.yaml`` validated into frozen :class:`TopicDecl`.

Entries with a ``role`` take their name from the settings (``SPANSTREAM_INPUT_TOPIC``
and the others in :data:`ROLE_FIELDS`), so the worker and its topics always agree;
every error names the file, the entry and the offending option and value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.settings import Settings

#: The repository's declarations (the package is installed editable from the repo).
DEFAULT_TOPICS_FILE = Path(__file__).resolve().parents[2] / "topics" / "topics.yaml"

#: Logical roles and the settings field holding each one's topic name.
ROLE_FIELDS = {
    "input": "input_topic",
    "dlq": "dlq_topic",
    "alerts": "alert_topic",
    "alerts_dlq": "delivery_dlq_topic",
    "partials": "partials_topic",
    "windows_changelog": "windows_changelog_topic",
    "detectors_changelog": "detectors_changelog_topic",
    "slo_changelog": "slo_changelog_topic",
}
#: Roles a worker creates itself when missing: Faust's table changelogs, named after the group.
INTERNAL_ROLES = frozenset({"windows_changelog", "detectors_changelog", "slo_changelog"})

_ENTRY_KEYS = {"role", "name", "partitions", "replication_factor", "config"}
_CLEANUP_POLICIES = {"delete", "compact", "compact,delete"}
_COMPRESSION_TYPES = {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}


@dataclass(frozen=True)
class TopicDecl:
    """One declared topic; ``config`` holds topic-level overrides as sorted string pairs."""

    name: str
    partitions: int
    replication_factor: int
    config: tuple[tuple[str, str], ...] = ()
    role: str | None = None

    @property
    def config_dict(self) -> dict[str, str]:
        """``config`` as a dict, as the admin API takes it."""
        return dict(self.config)


def load_declarations(path: Path, settings: Settings) -> list[TopicDecl]:
    """Read and validate ``path``; role entries take their names from ``settings``."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read topic declarations: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse_declarations(document, settings, source=str(path))


def parse_declarations(document: Any, settings: Settings, source: str) -> list[TopicDecl]:
    """Validate a parsed YAML document (``{"topics": [...]}``) into declarations.

    >>> from pipeline.settings import load_settings
    >>> doc = {"topics": [{"role": "dlq", "partitions": 1, "replication_factor": 1}]}
    >>> parse_declarations(doc, load_settings({}), "t.yaml")[0].name
    'spanstream-dlq'
    """
    if not isinstance(document, dict) or not isinstance(document.get("topics"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'topics' list")
    decls = [
        _parse_entry(entry, settings, f"{source}: topic #{i + 1}")
        for i, entry in enumerate(document["topics"])
    ]
    seen: set[str] = set()
    for decl in decls:
        if decl.name in seen:
            raise ConfigError(f"{source}: topic {decl.name!r} declared twice")
        seen.add(decl.name)
    return decls


def _parse_entry(entry: Any, settings: Settings, where: str) -> TopicDecl:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r}")
    name, role = _parse_name(entry, settings, where)
    where = f"{where.split(': ')[0]}: topic {name!r}"
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: config={config!r}: expected a mapping")
    return TopicDecl(
        name=name,
        partitions=_positive_int(entry, "partitions", where),
        replication_factor=_positive_int(entry, "replication_factor", where),
        config=tuple(sorted(_parse_config(config, where).items())),
        role=role,
    )


def _parse_name(entry: dict[str, Any], settings: Settings, where: str) -> tuple[str, str | None]:
    role, name = entry.get("role"), entry.get("name")
    if (role is None) == (name is None):
        raise ConfigError(
            f"{where}: give exactly one of 'role' ({'/'.join(ROLE_FIELDS)}) or 'name'"
        )
    if role is not None:
        if role not in ROLE_FIELDS:
            raise ConfigError(f"{where}: role={role!r}: expected one of {', '.join(ROLE_FIELDS)}")
        return str(getattr(settings, ROLE_FIELDS[role])), str(role)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name={name!r}: expected a non-empty string")
    return name, None


def _positive_int(entry: dict[str, Any], key: str, where: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {key}={value!r}: expected an integer >= 1")
    return value


def _parse_config(config: dict[str, Any], where: str) -> dict[str, str]:
    out = {str(k): _config_str(v) for k, v in config.items()}
    retention = config.get("retention.ms")
    if retention is not None and (
        isinstance(retention, bool) or not isinstance(retention, int) or retention < -1
    ):
        raise ConfigError(f"{where}: retention.ms={retention!r}: expected an integer >= -1")
    checks = (("cleanup.policy", _CLEANUP_POLICIES), ("compression.type", _COMPRESSION_TYPES))
    for key, allowed in checks:
        if key in out and normalize(key, out[key]) not in allowed:
            raise ConfigError(
                f"{where}: {key}={config[key]!r}: expected one of {', '.join(sorted(allowed))}"
            )
    return out


def _config_str(value: Any) -> str:
    """Kafka's string form of a YAML scalar (booleans are lowercase)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def normalize(key: str, value: str) -> str:
    """Canonical form for comparison: list-valued ``cleanup.policy`` is order-free.

    >>> normalize("cleanup.policy", "delete, compact")
    'compact,delete'
    """
    if key == "cleanup.policy":
        return ",".join(sorted(part.strip() for part in value.split(",")))
    return value.strip()
