"""Topic reads and writes on the broker through confluent-kafka's AdminClient."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

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

from pipeline.errors import ConfigError, ServiceUnavailable
from pipeline.kafka_client import RefusalWatch, describe, librdkafka_config
from pipeline.settings.kafka import KafkaSecurity
from pipeline.topics.declarations import TopicDecl
from pipeline.topics.planning import PlanItem, TopicState

_T = TypeVar("_T")
_LIBRDKAFKA_LOG = logging.getLogger("pipeline.topics.librdkafka")

# Errors meaning "no answer" rather than "the broker said no".
_TRANSPORT_ERRORS = frozenset(
    {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
)


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
        grow = [
            NewPartitions(item.decl.name, item.decl.partitions)
            for item in items
            if any(d.fixable and d.field == "partitions" for d in item.drifts)
        ]
        alters = [resource for item in items if (resource := _config_fix(item)) is not None]
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


def _config_fix(item: PlanItem) -> ConfigResource | None:
    """The config changes that repair ``item``'s fixable config drift, or None."""
    entries = [
        ConfigEntry(d.field, d.expected, incremental_operation=AlterConfigOpType.SET)
        for d in item.drifts
        if d.fixable and d.field not in ("partitions", "replication_factor")
    ]
    if not entries:
        return None
    return ConfigResource(ResourceType.TOPIC, item.decl.name, incremental_configs=entries)
