"""Service graph settings: whether it is derived, how often it is written, its peer cap."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings.env import enforce


@dataclass(frozen=True)
class GraphOptions:
    """The service graph (environment variable and default)."""

    #: SPANSTREAM_SERVICE_GRAPH: derive edges and self time from every decided trace.
    service_graph: bool = True
    #: SPANSTREAM_GRAPH_FLUSH_SECONDS: graph increments are written and exported this often.
    graph_flush_seconds: float = 10.0
    #: SPANSTREAM_GRAPH_MAX_PEERS: distinct uninstrumented peers named; later ones __overflow__.
    graph_max_peers: int = 200


def check(s: GraphOptions) -> None:
    """A positive flush interval and peer cap."""
    enforce(
        s,
        [
            ("graph_flush_seconds", s.graph_flush_seconds > 0, "must be > 0"),
            ("graph_max_peers", s.graph_max_peers > 0, "must be > 0"),
        ],
    )
