"""Everything Faust-specific in the worker, and why each workaround exists.

Faust runs the window stage: it consumes the partials topic, keeps the
``windows`` and ``detectors`` tables (changelogged, rebuilt on failover),
runs the close timer and serves ``/query``. The stage itself
(:mod:`pipeline.windows.stage`) is plain code; this package adapts Faust to it.

:mod:`.app` builds the app. The workarounds, each where it lives:

1. Manual acks (``stream.noack()`` in :mod:`.app`). Faust acks the event in hand
   when its stream is closed (a stopping worker cancels the agent, e.g. while it
   waits for a close writing to ClickHouse), merged or not, and the stop then
   commits it. Acked only once merged, a partial cut short stays uncommitted
   and the next owner of its partition merges it (or skips it as a duplicate).
2. Skipped offsets read back with a second consumer (:mod:`.continuity`,
   :mod:`.partials_log`, :mod:`.readback`, :mod:`.gaps`). During a rebalance
   Faust can skip records of a partition, count the jump as a gap and commit
   past it; the partials topic has no gaps of its own, so the stage tracks the
   next offset per partition, reads a skipped range itself (a consumer outside
   the group), merges it first, then records it as a Faust gap so the commit
   can move on. :class:`~.gaps.StallWatch` releases a commit Faust holds for
   offsets already merged (its head rule after a rebalance, with no jump seen).
   These read Faust's private consumer bookkeeping (``_acked``, ``_gap``,
   ``_committed_offset``, ``_add_gap``); faust-streaming is pinned in
   ``constraints.txt`` and the agent tests (``tests/unit/faust/``) exercise it.
3. The owned-partition table view (:mod:`.tables`). Faust's in-memory store
   keeps keys of partitions that moved away, and a timer has no event tying a
   write to a partition; :class:`~.tables.OwnedView` filters keys by their
   murmur2 partition against the current assignment, and stages a close's
   writes so a failed close leaves the tables as they were.
4. The state codec (:mod:`.tables`, ``RAW`` in :mod:`.app`). Every topic and
   table is raw bytes: a Faust codec (json rebuilds any registered model a
   payload names) never runs on what is read from Kafka; the view encodes and
   checks JSON itself, so a tampered changelog record is rejected, never run.
5. Failover time (``broker_session_timeout`` in :mod:`.app`): the ingest
   consumer's session timeout, not Faust's 60 s default.
"""
