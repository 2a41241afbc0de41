"""SLI counts of closed windows: good and total requests per (SLO, series, window).

Availability: good = requests not in error. Latency: good = requests at most the
threshold, out of the requests counted for it (every request, unless some partials
of the window came from a worker without that threshold, e.g. during a rolling
change of the SLO file: the SLI then counts only the requests that were measured,
never guesses). A window without requests gives no count.

>>> from pipeline.slo.spec import Slo, SloSet
>>> from pipeline.windows.series import ClosedWindow
>>> slos = SloSet((Slo("up", "shop", (), "availability", 99.9),
...                Slo("fast", "shop", ("GET /",), "latency", 99.0, threshold_ms=100)))
>>> w = ClosedWindow("shop", "GET /", 0, 60 * 10**9, 10, 2, 0.2, 1, 2, 3, 4, 0, ("a" * 32,),
...                  under=((100_000_000, 7, 10),))
>>> [(c.slo, c.good, c.total) for c in sli_counts(slos, [w], 60 * 10**9)]
[('up', 8, 10), ('fast', 7, 10)]
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.slo.ledger import MAX_EXEMPLARS, SliCount
from pipeline.slo.spec import Slo, SloSet
from pipeline.windows.series import ClosedWindow


def sli_counts(slos: SloSet, closed: Sequence[ClosedWindow], window_ns: int) -> list[SliCount]:
    """One count per SLO covering each closed window with requests."""
    out = []
    for w in closed:
        if w.requests == 0:
            continue
        for slo in slos.for_series(w.service, w.operation):
            good_total = _good_total(slo, w)
            if good_total is None or good_total[1] == 0:
                continue
            good, total = good_total
            examples = w.exemplars[:MAX_EXEMPLARS]
            out.append(
                SliCount(slo.name, w.service, w.operation, w.window_start_ns, window_ns, good,
                         total, examples)
            )  # fmt: skip
    return out


def _good_total(slo: Slo, w: ClosedWindow) -> tuple[int, int] | None:
    if slo.sli == "availability":
        return w.requests - w.errors, w.requests
    for threshold, under, covered in w.under:
        if threshold == slo.threshold_ns:
            return under, covered
    return None
