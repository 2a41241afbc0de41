"""Kafka topics as code: declarations in ``topics/topics.yaml``, a pure plan, and apply.

:func:`load_declarations` validates the YAML into frozen :class:`TopicDecl`;
:func:`plan` compares declarations with what the broker has (:class:`TopicState`)
and says per topic ``create``, ``ok`` or ``drift`` (with expected vs actual);
:class:`TopicAdmin` does the I/O through confluent-kafka's AdminClient.

>>> decl = TopicDecl("otlp_spans", 6, 1, (("retention.ms", "86400000"),))
>>> [item.action for item in plan([decl], {})]
['create']
>>> state = TopicState("otlp_spans", 3, 1, {"retention.ms": "86400000"})
>>> item = plan([decl], {"otlp_spans": state})[0]
>>> item.action, item.drifts[0].describe()
('drift', 'partitions: expected 6, actual 3 (fixable)')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from pipeline.errors import ConfigError, ServiceUnavailable, TopicDriftError
from pipeline.kafka_client import KafkaSecurity, RefusalWatch, describe, librdkafka_config
from pipeline.settings import Settings

_T = TypeVar("_T")
_LIBRDKAFKA_LOG = logging.getLogger("pipeline.topics.librdkafka")

#: The repository's declarations (the package is installed editable from the repo).
DEFAULT_TOPICS_FILE = Path(__file__).resolve().parents[1] / "topics" / "topics.yaml"

#: Logical roles and the settings field holding each one's topic name.
ROLE_FIELDS = {
    "input": "input_topic",
    "dlq": "dlq_topic",
    "alerts": "alert_topic",
    "partials": "partials_topic",
    "windows_changelog": "windows_changelog_topic",
    "detectors_changelog": "detectors_changelog_topic",
}
#: Roles a worker creates itself when missing: Faust's table changelogs, named after the group.
INTERNAL_ROLES = frozenset({"windows_changelog", "detectors_changelog"})

_ENTRY_KEYS = {"role", "name", "partitions", "replication_factor", "config"}
_CLEANUP_POLICIES = {"delete", "compact", "compact,delete"}
_COMPRESSION_TYPES = {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}

Action = Literal["create", "ok", "drift"]

# Errors meaning "no answer" rather than "the broker said no".
_TRANSPORT_ERRORS = frozenset(
    {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
)


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


@dataclass(frozen=True)
class TopicState:
    """What the broker has for one topic: partition count, replicas, effective config."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class Drift:
    """One difference between declaration and broker; ``fixable`` by ``apply --fix``."""

    field: str
    expected: str
    actual: str
    fixable: bool

    def describe(self) -> str:
        """``field: expected X, actual Y`` plus whether ``--fix`` can repair it."""
        how = "fixable" if self.fixable else "not fixable in place"
        return f"{self.field}: expected {self.expected}, actual {self.actual} ({how})"


@dataclass(frozen=True)
class PlanItem:
    """What to do with one declared topic."""

    decl: TopicDecl
    action: Action
    drifts: tuple[Drift, ...] = ()


# --- declarations -----------------------------------------------------------------------


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


# --- plan (pure) ------------------------------------------------------------------------


def plan(decls: Sequence[TopicDecl], existing: Mapping[str, TopicState]) -> list[PlanItem]:
    """Compare each declaration with the broker's state; topics not declared are ignored."""
    items = []
    for decl in decls:
        state = existing.get(decl.name)
        if state is None:
            items.append(PlanItem(decl, "create"))
            continue
        drifts = tuple(_drifts(decl, state))
        items.append(PlanItem(decl, "drift" if drifts else "ok", drifts))
    return items


def _drifts(decl: TopicDecl, state: TopicState) -> list[Drift]:
    drifts = []
    if decl.partitions != state.partitions:
        # Kafka can add partitions but never remove them.
        grow = decl.partitions > state.partitions
        drifts.append(Drift("partitions", str(decl.partitions), str(state.partitions), grow))
    if decl.replication_factor != state.replication_factor:
        drifts.append(
            Drift(
                "replication_factor",
                str(decl.replication_factor),
                str(state.replication_factor),
                fixable=False,
            )
        )
    for key, expected in decl.config:
        actual = state.config.get(key)
        if actual is None or normalize(key, actual) != normalize(key, expected):
            drifts.append(Drift(key, expected, "unset" if actual is None else actual, True))
    return drifts


def problems(items: Sequence[PlanItem]) -> list[str]:
    """One short phrase per missing or drifted topic, for a one-line error.

    >>> problems([PlanItem(TopicDecl("a", 1, 1), "create")])
    ["'a' missing"]
    """
    out = []
    for item in items:
        if item.action == "create":
            out.append(f"{item.decl.name!r} missing")
        elif item.action == "drift":
            fields = ", ".join(d.describe() for d in item.drifts)
            out.append(f"{item.decl.name!r} drifted ({fields})")
    return out


# --- broker I/O -------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` did and the plan after it (re-described from the broker)."""

    created: tuple[str, ...]
    fixed: tuple[str, ...]
    final: tuple[PlanItem, ...]


class TopicAdmin:
    """Topic reads and writes through confluent-kafka's AdminClient, each with a deadline.

    An unreachable broker becomes :class:`~pipeline.errors.ServiceUnavailable` after
    ``timeout`` seconds instead of a hang; librdkafka's own log goes to the
    ``pipeline.topics.librdkafka`` logger, not straight to stderr.
    """

    def __init__(self, bootstrap: str, timeout: float = 10.0, *, security: KafkaSecurity) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._security = security
        self._refused = RefusalWatch()
        conf: dict[str, Any] = {
            **librdkafka_config(bootstrap, security),
            "socket.timeout.ms": int(timeout * 1000),
            "logger": _LIBRDKAFKA_LOG,
            # A refused or unreachable broker surfaces once, as the error line; librdkafka's
            # own lines about each retry only with --verbose.
            "log_level": 7 if _LIBRDKAFKA_LOG.isEnabledFor(logging.DEBUG) else 2,
            "error_cb": self._refused,
        }
        self._admin = AdminClient(conf)

    def describe(self, names: Iterable[str] | None = None) -> dict[str, TopicState]:
        """State of the named topics that exist (all non-internal topics if ``names`` is None)."""
        metadata = self._list_topics()
        wanted = set(metadata.topics) if names is None else set(names)
        found = {
            name: meta
            for name, meta in metadata.topics.items()
            if name in wanted and not name.startswith("__") and meta.error is None
        }
        if not found:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in found]
        futures = self._admin.describe_configs(resources, request_timeout=self.timeout)
        states = {}
        for resource, future in futures.items():
            entries = self._result(f"describe configs of {resource.name!r}", future)
            meta = found[resource.name]
            replicas = [len(p.replicas) for p in meta.partitions.values()]
            states[resource.name] = TopicState(
                name=resource.name,
                partitions=len(meta.partitions),
                replication_factor=min(replicas, default=0),
                config={key: entry.value for key, entry in entries.items() if entry.value},
            )
        return states

    def create(self, decls: Sequence[TopicDecl]) -> None:
        """Create topics; one that already exists (a concurrent apply) is fine."""
        new = [
            NewTopic(d.name, d.partitions, d.replication_factor, config=d.config_dict)
            for d in decls
        ]
        futures = self._admin.create_topics(
            new, operation_timeout=self.timeout, request_timeout=self.timeout
        )
        for name, future in futures.items():
            try:
                self._result(f"create topic {name!r}", future)
            except _Rejected as exc:
                if exc.code != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ConfigError(f"cannot create topic {name!r}: {exc}") from None

    def fix(self, items: Sequence[PlanItem]) -> list[str]:
        """Apply fixable drift: add partitions and set configs. Returns the topics touched."""
        grow, alters = [], []
        for item in items:
            fixable = [d for d in item.drifts if d.fixable]
            if any(d.field == "partitions" for d in fixable):
                grow.append(NewPartitions(item.decl.name, item.decl.partitions))
            entries = [
                ConfigEntry(d.field, d.expected, incremental_operation=AlterConfigOpType.SET)
                for d in fixable
                if d.field not in ("partitions", "replication_factor")
            ]
            if entries:
                alters.append(
                    ConfigResource(ResourceType.TOPIC, item.decl.name, incremental_configs=entries)
                )
        if grow:
            for name, future in self._admin.create_partitions(
                grow, request_timeout=self.timeout
            ).items():
                self._result(f"add partitions to {name!r}", future)
        if alters:
            for res, future in self._admin.incremental_alter_configs(
                alters, request_timeout=self.timeout
            ).items():
                self._result(f"alter configs of {res.name!r}", future)
        return sorted({p.topic for p in grow} | {r.name for r in alters})

    def _list_topics(self) -> Any:
        """Metadata, in short slices: a broker that refuses the credentials or the TLS setup
        ends the wait at once (one line naming the settings) instead of after ``timeout``."""
        deadline = time.monotonic() + self.timeout
        while True:
            slice_s = max(0.1, min(1.0, deadline - time.monotonic()))
            try:
                return self._admin.list_topics(timeout=slice_s)
            except KafkaException as exc:
                self._admin.poll(0)  # serves error_cb, which records a refusal
                if self._refused.reason is not None:
                    who = describe(self.bootstrap, self._security)
                    raise ServiceUnavailable(
                        f"Kafka at {who} refused the connection: {self._refused.reason}"
                    ) from None
                if time.monotonic() >= deadline:
                    raise self._unavailable("list topics", exc.args[0].str()) from None

    def _result(self, what: str, future: Future[_T]) -> _T:
        try:
            return future.result(self.timeout)
        except TimeoutError:
            raise self._unavailable(what, "timed out") from None
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in _TRANSPORT_ERRORS:
                raise self._unavailable(what, err.str()) from None
            raise _Rejected(err.code(), err.str()) from None

    def _unavailable(self, what: str, detail: str) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Kafka at {self.bootstrap} did not answer ({what}; {self.timeout:g}s): {detail}"
        )


class _Rejected(Exception):
    """The broker answered with an error for one request."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def apply(admin: TopicAdmin, decls: Sequence[TopicDecl], fix: bool = False) -> ApplyResult:
    """Create missing topics, optionally fix drift, then re-describe and re-plan."""
    before = plan(decls, admin.describe(d.name for d in decls))
    missing = [item.decl for item in before if item.action == "create"]
    if missing:
        admin.create(missing)
    fixed: list[str] = []
    if fix:
        fixed = admin.fix([item for item in before if item.action == "drift"])
    final = _wait_settled(admin, decls, {d.name for d in missing} | set(fixed))
    return ApplyResult(tuple(d.name for d in missing), tuple(fixed), tuple(final))


def prepare_worker_topics(admin: TopicAdmin, decls: Sequence[TopicDecl]) -> list[str]:
    """Before a worker starts: create missing internal topics, refuse if others are missing.

    Returns the names created. The user's topics come from ``spanstream topics apply``;
    the Faust changelogs are named after the group, so a worker in a new group creates
    them (and waits until they are in the metadata) before Faust looks for them.
    """
    items = plan(decls, admin.describe(d.name for d in decls))
    missing = [item.decl for item in items if item.action == "create"]
    absent = [d.name for d in missing if d.role not in INTERNAL_ROLES]
    if absent:
        raise TopicDriftError(f"missing topics {absent}: run `spanstream topics apply` first")
    internal = [d for d in missing if d.role in INTERNAL_ROLES]
    if internal:
        admin.create(internal)
        _wait_settled(admin, decls, {d.name for d in internal})
    return [d.name for d in internal]


def _wait_settled(
    admin: TopicAdmin, decls: Sequence[TopicDecl], touched: set[str]
) -> list[PlanItem]:
    """Re-plan until topics just created or fixed show it: metadata lags the admin calls."""
    deadline = time.monotonic() + admin.timeout
    while True:
        final = plan(decls, admin.describe(d.name for d in decls))
        pending = [
            item
            for item in final
            if item.decl.name in touched
            and (item.action == "create" or any(d.fixable for d in item.drifts))
        ]
        if not pending or time.monotonic() > deadline:
            return final
        time.sleep(0.1)
