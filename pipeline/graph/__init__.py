"""The service graph: edges between services and per-operation self time, from traces.

:mod:`pipeline.graph.edges` holds the values (edge keys and stats, self time, a window
of both); the rest derives them from one trace's spans and aggregates them per window.
"""
