"""Tumbling-window RED metrics: sketch, per-source partials, exactly-once final assembly.

The path: :class:`PartialAggregator` (one per input partition) ->
:class:`Partial` (repartitioned by series) -> :class:`WindowAssembler` (closing
by :class:`Watermark`) -> :class:`ClosedWindow` (to the detectors and
ClickHouse, by :mod:`pipeline.windows.stage`). All plain code; the Faust shell
(:mod:`pipeline.faust`) feeds partials in and keeps the state tables.
"""

from pipeline.windows.assembler import MergeResult, WindowAssembler, series_key
from pipeline.windows.hold import Hold
from pipeline.windows.latency_sketch import LatencySketch
from pipeline.windows.partial import Partial, PartialAggregator, window_start_ns
from pipeline.windows.red_stats import Exemplar, WindowStats
from pipeline.windows.series import ClosedWindow, SeriesState
from pipeline.windows.watermark import Watermark

__all__ = [
    "ClosedWindow",
    "Exemplar",
    "Hold",
    "LatencySketch",
    "MergeResult",
    "Partial",
    "PartialAggregator",
    "SeriesState",
    "Watermark",
    "WindowAssembler",
    "WindowStats",
    "series_key",
    "window_start_ns",
]
