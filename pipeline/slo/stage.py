"""The SLO part of the window stage: SLI counts out at each close, burn state in, burn
rows and alerts out. No Faust here (the app hands in the table view and the topics).

1. :meth:`SloStage.send_counts`: the windows a close just closed give one
   :class:`~pipeline.slo.ledger.SliCount` per (SLO, series, window), sent to the
   partials topic keyed and partitioned by the SLO, acked before the close's table
   writes land (a retried close sends them again; they are duplicates then).
2. :meth:`SloStage.take_in`: the worker owning that partition counts it once into
   the SLO's state in the ``slo`` table (its changelog survives restarts).
3. :meth:`SloStage.evaluate`: in each close, for every SLO owned here, every window
   before the newest one with counts that the watermark passed by one more window
   than the close needs (so that the counts of series closed by other workers are
   in) is evaluated: a row in ``spanstream_slo_burn``, and alert steps on the alert
   topic. A count arriving for a window already evaluated writes its rows again
   (alerts stay as decided). Staged like the close: the state (evaluated mark,
   episodes) lands after rows and alerts are durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pipeline import metrics
from pipeline.checked import StateError
from pipeline.errors import SinkUnavailable
from pipeline.rejections import Rejections
from pipeline.sinks.clickhouse import table_writer
from pipeline.slo.alerts import SEVERITIES, advance, message
from pipeline.slo.burn import Burn, evaluate
from pipeline.slo.ledger import SliCount, SloState, slo_key
from pipeline.slo.sli import sli_counts
from pipeline.slo.spec import Slo, SloSet, format_duration
from pipeline.store.base import Store
from pipeline.tables import key_bytes, partition_of
from pipeline.windows.series import ClosedWindow

log = logging.getLogger(__name__)

SLO_BURN_TABLE = "spanstream_slo_burn"
NS_PER_MS = 1_000_000
#: Windows' worth of processing time without a count after which an SLO (its traffic
#: stopped) is evaluated up to the watermark's bound anyway, so its alerts still resolve.
SETTLE_WINDOWS = 5
#: Windows evaluated per SLO per close at most (a long pause skips older windows).
MAX_CATCH_UP = 1_000
STARTS_OVER = "the SLO's burn state starts over"


class SloStage:
    """SLI counts, burn state and burn alerts of the SLOs in ``slos``."""

    def __init__(
        self,
        *,
        slos: SloSet,
        window_ns: int,
        table: Any,
        store: Store,
        partials: Any,
        alerts: Any,
        partitions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slos, self.window_ns = slos, window_ns
        self.table, self.store = table, store
        self.partials, self.alerts, self.partitions = partials, alerts, partitions
        self._by_name = {s.name: s for s in slos.slos}
        self.rejections = Rejections("slo")
        self.clock = clock
        #: since when (``clock``) the stage has had no watermark, or None
        self._blind_since: float | None = None
        #: when (``clock``) each SLO last took a count in; from the start for all
        self._last_count: dict[str, float] = {}
        self._started = clock()

    async def after_close(self, closed: Sequence[ClosedWindow], ready_ns: int | None) -> None:
        """Steps 1 and 3, inside the window stage's staged close. Windows this close just
        closed wait for their counts (in flight to the SLO owner) before they are evaluated."""
        if closed:
            await self.send_counts(closed)
            in_flight = min(w.window_start_ns for w in closed)
            ready_ns = None if ready_ns is None else min(ready_ns, in_flight)
        await self.evaluate(ready_ns)

    # -- 1 --------------------------------------------------------------------------------
    async def send_counts(self, closed: Sequence[ClosedWindow]) -> None:
        """Send the SLI counts of ``closed``; raises SinkUnavailable unless all are acked."""
        counts = sli_counts(self.slos, closed, self.window_ns)
        try:
            pending = [
                await self.partials.send(
                    key=key_bytes(slo_key(c.slo)),
                    value=c.to_json(),
                    partition=partition_of(slo_key(c.slo), self.partitions),
                )
                for c in counts
            ]
            for delivery in pending:
                await delivery
        except Exception as exc:
            raise SinkUnavailable(f"partials topic (SLI counts): {exc}") from exc

    # -- 2 --------------------------------------------------------------------------------
    def take_in(self, sli: SliCount) -> str:
        """Count one SLI record into its SLO's state: counted, duplicate, late or unknown."""
        slo = self._by_name.get(sli.slo)
        if (
            slo is None
            or sli.window_ns != self.window_ns
            or not slo.covers(sli.service, sli.operation)
        ):
            outcome = "unknown"
        else:
            key = slo_key(slo.name)
            state = self._load(key, slo)
            outcome = state.add(sli)
            self._last_count[slo.name] = self.clock()
            if outcome in ("counted", "replaced"):
                self.table[key] = state.to_dict()
        metrics.SLO_COUNTS.labels(outcome).inc()
        return outcome

    def _load(self, key: str, slo: Slo) -> SloState:
        """The stored state (fresh if none); a value that does not parse is rejected."""
        return self._stored(key, slo) or SloState.new(slo, self.window_ns)

    def _stored(self, key: str, slo: Slo) -> SloState | None:
        """The stored state, None if there is none (or the key is another worker's)."""
        try:
            value = self.table.get(key)
            return None if value is None else SloState.from_dict(value, slo, self.window_ns)
        except StateError as exc:
            self.rejections.reject(key, exc, STARTS_OVER)
            return SloState.new(slo, self.window_ns)

    # -- 3 --------------------------------------------------------------------------------
    async def evaluate(self, ready_until_ns: int | None) -> None:
        """Evaluate every owned SLO's windows starting before ``ready_until_ns`` (None: no
        watermark, e.g. restarted with no traffic since; see :meth:`_until`)."""
        if ready_until_ns is not None:
            self._blind_since = None
        elif self._blind_since is None:
            self._blind_since = self.clock()
        burns: list[Burn] = []
        messages: list[dict[str, Any]] = []
        for slo in self.slos.slos:
            key = slo_key(slo.name)
            state = self._stored(key, slo)
            if state is None:
                continue  # not owned here, or no counts yet
            found = self._windows(slo, state, self._until(slo, state, ready_until_ns))
            if found:
                burns += [b for b, _ in found]
                messages += [m for _, ms in found for m in ms]
                self.table[key] = state.to_dict()
        if burns:
            write = table_writer(self.store, SLO_BURN_TABLE, burn_columns)
            await asyncio.to_thread(write, burns, burn_token(burns))
        await self._publish(messages)

    def _until(self, slo: Slo, state: SloState, ready_ns: int | None) -> int | None:
        """Windows starting before this are evaluated: those before the newest one with
        counts (the counts of a series arrive in window order), within the watermark's
        bound; once the SLO has taken no count for :data:`SETTLE_WINDOWS` windows' time
        (its traffic stopped), every window the watermark's bound passed. Without a
        watermark for that long (a restart after the traffic stopped: nothing moves
        it), every window with counts."""
        settle = SETTLE_WINDOWS * self.window_ns / 1e9
        now = self.clock()
        newest = state.newest_ns
        if ready_ns is None:
            blind = self._blind_since is not None and now - self._blind_since >= settle
            return newest + self.window_ns if blind and newest is not None else None
        quiet = now - self._last_count.get(slo.name, self._started) >= settle
        return ready_ns if quiet or newest is None else min(ready_ns, newest)

    def _windows(
        self, slo: Slo, state: SloState, until_ns: int | None
    ) -> list[tuple[Burn, list[dict[str, Any]]]]:
        out = self._restated(slo, state)
        start = state.evaluated_until_ns
        if start is None or until_ns is None or start + self.window_ns > until_ns:
            return out
        start = max(start, until_ns - MAX_CATCH_UP * self.window_ns)
        while start + self.window_ns <= until_ns:
            burn = evaluate(slo, state.fine, state.coarse, start, self.window_ns)
            steps = []
            for severity in SEVERITIES:
                onset = state.episodes.get(severity, [None, start])[1]
                step = advance(state.episodes, slo.name, severity, severity in burn.firing, start)
                if step is not None:
                    steps.append(message(burn, severity, step, onset, state.exemplars))
            out.append((burn, steps))
            start += self.window_ns
        state.evaluated_until_ns = start
        return out

    def _restated(self, slo: Slo, state: SloState) -> list[tuple[Burn, list[dict[str, Any]]]]:
        """Rows again for evaluated windows that got counts since (no alert steps: those
        were decided on what was known then)."""
        start, until = state.restate_from_ns, state.evaluated_until_ns
        state.restate_from_ns = None
        if start is None or until is None:
            return []
        starts = range(max(start, until - MAX_CATCH_UP * self.window_ns), until, self.window_ns)
        return [(evaluate(slo, state.fine, state.coarse, s, self.window_ns), []) for s in starts]

    async def _publish(self, messages: Sequence[dict[str, Any]]) -> None:
        try:
            pending = [
                await self.alerts.send(key=m["service"].encode(), value=json.dumps(m).encode())
                for m in messages
            ]
            for delivery in pending:
                await delivery
        except Exception as exc:
            raise SinkUnavailable(f"alert topic (SLO burn): {exc}") from exc
        for m in messages:
            metrics.ALERTS.labels(m["status"], m["severity"]).inc()
            log.info("slo alert %s v%d: %s", m["alert_id"], m["version"], m["summary"])


def burn_columns(burns: Sequence[Burn]) -> dict[str, list[Any]]:
    """``spanstream_slo_burn`` columns: one row per SLO per evaluated window."""
    return {
        "Slo": [b.slo.name for b in burns],
        "ServiceName": [b.slo.service for b in burns],
        "Sli": [b.slo.sli for b in burns],
        "Objective": [b.slo.objective for b in burns],
        "WindowStart": [b.window_start_ns // NS_PER_MS for b in burns],
        "WindowEnd": [b.window_end_ns // NS_PER_MS for b in burns],
        "Good": [b.window.good for b in burns],
        "Total": [b.window.total for b in burns],
        "BurnRates": [{format_duration(s): r for s, r in b.rates.items()} for b in burns],
        "BudgetRemaining": [b.budget_remaining for b in burns],
        "Firing": [list(b.firing) for b in burns],
    }


def burn_token(burns: Sequence[Burn]) -> str:
    """The dedup token of one evaluation: the same rows, the same token."""
    rows = burn_columns(burns)
    digest = hashlib.blake2b(json.dumps(rows, sort_keys=True).encode(), digest_size=8)
    return f"slo-{len(burns)}-{digest.hexdigest()}"
