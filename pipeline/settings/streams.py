"""Topic and consumer-group settings, and the names Faust derives from the group.

>>> s = StreamOptions(group="shop")
>>> s.windows_app_id, s.windows_changelog_topic
('shop-windows', 'shop-windows-windows-changelog')
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings.env import enforce


@dataclass(frozen=True)
class StreamOptions:
    """The worker's topics and consumer group (environment variable and default)."""

    #: SPANSTREAM_INPUT_TOPIC: where the Collector's kafka exporter writes (its default name).
    input_topic: str = "otlp_spans"
    #: SPANSTREAM_DLQ_TOPIC: undecodable records, with the error in headers.
    dlq_topic: str = "spanstream-dlq"
    #: SPANSTREAM_ALERT_TOPIC: JSON alerts keyed by service.
    alert_topic: str = "spanstream-alerts"
    #: SPANSTREAM_PARTIALS_TOPIC: per-partition window partials, keyed by (service, operation).
    partials_topic: str = "spanstream-partials"
    #: SPANSTREAM_PARTIALS_PARTITIONS: partitions of the partials topic and of the window tables.
    partials_partitions: int = 6
    #: SPANSTREAM_GROUP: consumer group of the input topic; workers in one group share its
    #: partitions. The window stage (Faust) uses ``<group>-windows``.
    group: str = "spanstream"

    @property
    def windows_app_id(self) -> str:
        """The Faust app id (and consumer group) of the window stage."""
        return f"{self.group}-windows"

    @property
    def windows_changelog_topic(self) -> str:
        """Changelog of the window stage's ``windows`` table (Faust's naming)."""
        return f"{self.windows_app_id}-windows-changelog"

    @property
    def detectors_changelog_topic(self) -> str:
        """Changelog of the window stage's ``detectors`` table (Faust's naming)."""
        return f"{self.windows_app_id}-detectors-changelog"

    @property
    def slo_changelog_topic(self) -> str:
        """Changelog of the window stage's ``slo`` table (burn state; Faust's naming)."""
        return f"{self.windows_app_id}-slo-changelog"


def check(s: StreamOptions) -> None:
    """Refuse a partition count Kafka cannot create."""
    enforce(s, [("partials_partitions", s.partials_partitions > 0, "must be > 0")])
