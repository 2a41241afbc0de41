"""Sinks: where decided spans, closed windows and alerts go.

The contract (see :mod:`pipeline.sinks.base`): ``add`` rows, ``flush`` writes
the pending batch as one insert; a failed write keeps the batch intact and
raises :class:`~pipeline.errors.SinkUnavailable` with ``retry_after`` so the
caller backs off and retries the *same* batch (same dedup token) instead of
acknowledging input it has not stored.
"""
