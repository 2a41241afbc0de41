"""Per-SLO burn state: what a closed window's SLI counts add, exactly once, and episodes.

An :class:`SliCount` is one series' good and total requests for one SLO in one closed
window; the window stage sends one per (SLO, series, window) when it closes the
window, to the partials topic keyed by the SLO (:func:`slo_key`), so every count of
an SLO meets in one partition, whichever worker closed its series.

:class:`SloState` is the value kept per SLO (a Faust table with a changelog). It holds
the per-window :class:`~pipeline.slo.ring.Ring` (as long as the longest rule window
plus :data:`DEDUP_WINDOWS`), the compliance window in coarser buckets, and per recent
window what each series counted: a count sent again (a close retried after a crash,
the partials topic replayed) is a duplicate and changes nothing; with other counts it
replaces them. A count for a window already evaluated (its series closed later than
the SLO evaluated the window) is counted, and the rows from that window on are
written again with it (``restate_from_ns``); a count older than :data:`DEDUP_WINDOWS`
windows behind the newest is refused as late (never counted twice, at the price of
not counting one that truly arrives that late), and so is one whose window the ring
already dropped.

Memory per SLO: two ints per window of the longest rule window (4,320 at 60 s windows
for the default 3-day ticket rule) plus two per compliance bucket (720), plus the
series seen in the last :data:`DEDUP_WINDOWS` windows: roughly 0.4 MB in Python and
50 KB of JSON per changelog write at the defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.checked import StateError, count, int64, items, parse_json, record, text
from pipeline.slo.burn import budget_step_ns, fine_size, windows_of
from pipeline.slo.ring import Ring
from pipeline.slo.spec import Slo

#: Windows behind the newest counted one for which duplicates are recognised.
DEDUP_WINDOWS = 60
#: Series one SLO may count in one window (its service's operation cap, with room).
MAX_SERIES = 10_000
MAX_EXEMPLARS = 5
_MARK = b'{"slo_sli"'


def slo_key(name: str) -> str:
    """The table key (and, as JSON, the record key) of an SLO's state.

    >>> slo_key("checkout-avail")
    '["slo","checkout-avail"]'
    """
    return json.dumps(["slo", name], separators=(",", ":"))


@dataclass(frozen=True)
class SliCount:
    """Good and total requests of one series for one SLO in one closed window."""

    slo: str
    service: str
    operation: str
    window_start_ns: int
    window_ns: int
    good: int
    total: int
    exemplars: tuple[str, ...] = ()

    @property
    def series(self) -> str:
        return json.dumps([self.service, self.operation], separators=(",", ":"))

    def to_json(self) -> bytes:
        """Canonical bytes, recognisable on the partials topic by their first key."""
        body = [self.slo, self.service, self.operation, self.window_start_ns, self.window_ns,
                self.good, self.total, list(self.exemplars)]  # fmt: skip
        return json.dumps({"slo_sli": body}, separators=(",", ":")).encode()

    @staticmethod
    def is_sli(value: bytes) -> bool:
        return value.startswith(_MARK)

    @classmethod
    def from_json(cls, value: bytes) -> SliCount:
        """Checked (``StateError``): a partials record is untrusted."""
        body = record(parse_json(value), "slo_sli", ["slo_sli"])["slo_sli"]
        slo, service, operation, start, window_ns, good, total, exemplars = items(
            body, "slo_sli", 8
        )
        total_n = count(total, "slo_sli.total")
        if not isinstance(exemplars, list) or len(exemplars) > MAX_EXEMPLARS:
            raise StateError("schema", f"slo_sli.exemplars: at most {MAX_EXEMPLARS}")
        return cls(
            slo=text(slo, "slo_sli.slo", 128),
            service=text(service, "slo_sli.service"),
            operation=text(operation, "slo_sli.operation"),
            window_start_ns=int64(start, "slo_sli.window_start_ns"),
            window_ns=count(window_ns, "slo_sli.window_ns") or _bad("slo_sli.window_ns"),
            good=count(good, "slo_sli.good", total_n),
            total=total_n,
            exemplars=tuple(text(e, "slo_sli.exemplars[]", 64) for e in exemplars),
        )


def _bad(where: str) -> int:
    raise StateError("schema", f"{where}: must be > 0")


@dataclass
class SloState:
    """The burn state of one SLO (module doc); ``episodes`` maps severity to
    ``[alert_id, onset_start_ns, version]`` of its open alert."""

    fine: Ring
    coarse: Ring
    #: window start -> series -> (good, total) counted for it (recent windows only)
    seen: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)
    #: windows starting before this were evaluated; None before the first count
    evaluated_until_ns: int | None = None
    newest_ns: int | None = None
    #: the oldest evaluated window a count arrived for since: its rows are written again
    restate_from_ns: int | None = None
    episodes: dict[str, list[Any]] = field(default_factory=dict)
    exemplars: list[str] = field(default_factory=list)

    @classmethod
    def new(cls, slo: Slo, window_ns: int) -> SloState:
        step = budget_step_ns(slo, window_ns)
        coarse = Ring(step, windows_of(slo.window_seconds, step) + 1)
        return cls(Ring(window_ns, fine_size(slo, window_ns) + DEDUP_WINDOWS), coarse)

    def add(self, sli: SliCount) -> str:
        """Count ``sli`` once: ``counted``, ``duplicate``, ``replaced`` or ``late``.

        The same series and window sent again with other counts (a window closed again
        after a crash, with spans that were late the first time merged on time now)
        replaces what was counted for it, as the window's row in
        ``spanstream_red_metrics`` is replaced.
        """
        start = sli.window_start_ns
        if self.newest_ns is not None and start < self.newest_ns - DEDUP_WINDOWS * sli.window_ns:
            return "late"
        seen = self.seen.setdefault(start, {})
        before = seen.get(sli.series)
        if before == (sli.good, sli.total):
            return "duplicate"
        good, total = before or (0, 0)
        if (before is None and len(seen) >= MAX_SERIES) or not self.fine.add(
            start, sli.good - good, sli.total - total
        ):
            return "late"
        self.coarse.add(start, sli.good - good, sli.total - total)
        seen[sli.series] = (sli.good, sli.total)
        if self.newest_ns is None or start > self.newest_ns:
            self.newest_ns = start
        if self.evaluated_until_ns is None:
            self.evaluated_until_ns = start
        elif start < self.evaluated_until_ns:  # a series closed later than the SLO's window
            self.restate_from_ns = min(start, self.restate_from_ns or start)
        floor = self.newest_ns - DEDUP_WINDOWS * sli.window_ns
        for old in [s for s in self.seen if s < floor]:
            del self.seen[old]
        if sli.good < sli.total:
            fresh = [e for e in sli.exemplars if e not in self.exemplars]
            self.exemplars = (fresh + self.exemplars)[:MAX_EXEMPLARS]
        return "counted" if before is None else "replaced"

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "fine": self.fine.to_list(),
            "coarse": self.coarse.to_list(),
            "seen": [
                [s, [[k, g, t] for k, (g, t) in sorted(series.items())]]
                for s, series in sorted(self.seen.items())
            ],
            "evaluated_until_ns": self.evaluated_until_ns,
            "newest_ns": self.newest_ns,
            "restate_from_ns": self.restate_from_ns,
            "episodes": {k: list(v) for k, v in sorted(self.episodes.items())},
            "exemplars": list(self.exemplars),
        }

    @classmethod
    def from_dict(cls, data: object, slo: Slo, window_ns: int) -> SloState:
        """Rebuild, checked (``StateError``): the changelog is untrusted. A state kept for
        another window size or other rules is refused (the SLO starts afresh)."""
        keys = ["v", "fine", "coarse", "seen", "evaluated_until_ns", "newest_ns",
                "restate_from_ns", "episodes", "exemplars"]  # fmt: skip
        d = record(data, "slo_state", keys)
        if d["v"] != 1:
            raise StateError("version", f"slo state version {str(d['v'])[:20]!r}")
        fresh = cls.new(slo, window_ns)
        state = cls(
            Ring.from_list(d["fine"], "slo.fine"), Ring.from_list(d["coarse"], "slo.coarse")
        )
        for mine, want in ((state.fine, fresh.fine), (state.coarse, fresh.coarse)):
            if (mine.step_ns, mine.size) != (want.step_ns, want.size):
                raise StateError("unusable", "kept for another window size or other rules")
        state.seen = _seen(d["seen"])
        state.evaluated_until_ns = _optional_ns(d["evaluated_until_ns"], "slo.evaluated_until_ns")
        state.newest_ns = _optional_ns(d["newest_ns"], "slo.newest_ns")
        state.restate_from_ns = _optional_ns(d["restate_from_ns"], "slo.restate_from_ns")
        state.episodes = _episodes(d["episodes"])
        state.exemplars = _exemplars(d["exemplars"])
        return state


def _optional_ns(value: object, where: str) -> int | None:
    return None if value is None else int64(value, where)


def _seen(value: object) -> dict[int, dict[str, tuple[int, int]]]:
    if not isinstance(value, list) or len(value) > DEDUP_WINDOWS + 1:
        raise StateError("schema", f"slo.seen: a list of at most {DEDUP_WINDOWS + 1}")
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for item in value:
        start, keys = items(item, "slo.seen[]", 2)
        if not isinstance(keys, list) or len(keys) > MAX_SERIES:
            raise StateError("schema", f"slo.seen[]: at most {MAX_SERIES} series")
        series = {}
        for entry in keys:
            key, good, total = items(entry, "slo.seen[][]", 3)
            total_n = count(total, "slo.seen[][]")
            series[text(key, "slo.seen[][]", 2100)] = (
                count(good, "slo.seen[][]", total_n),
                total_n,
            )
        out[int64(start, "slo.seen[]")] = series
    return out


def _episodes(value: object) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or not set(value) <= {"page", "ticket"}:
        raise StateError("schema", "slo.episodes: keys page and ticket only")
    out = {}
    for severity, episode in value.items():
        alert_id, onset, version = items(episode, "slo.episodes[]", 3)
        if not isinstance(alert_id, str) or len(alert_id) != 16:
            raise StateError("schema", "slo.episodes[]: an alert id of 16 characters")
        out[severity] = [alert_id, int64(onset, "slo.episodes[]"), count(version, "version")]
    return out


def _exemplars(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_EXEMPLARS:
        raise StateError("schema", f"slo.exemplars: at most {MAX_EXEMPLARS}")
    return [text(e, "slo.exemplars[]", 64) for e in value]
