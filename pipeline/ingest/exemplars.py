"""Which of a cut's exemplar candidates to keep: a bounded budget per series and window.

Every partial names its best traces (errors first, then the slowest) so that an
alert on its window can point at stored traces. Asking the sampler to keep all
of them would keep nearly everything: a window is cut every second, and each
cut of each (service, operation) would name new traces. So a partition keeps,
per (series, window), the ``limit`` best exemplars admitted so far; a
candidate is admitted (requested from the sampler and left in the partial) only
if it ranks among the best seen for that window. The merged window's exemplars
are the best of the admitted ones, so every exemplar an alert names was kept.
The number admitted grows like ``limit * ln(n)`` for ``n`` traces per window
(record-breaking values), not like ``n``.

>>> from pipeline.windows.red_stats import Exemplar
>>> budget = ExemplarBudget(limit=1)
>>> key = ("cart", "GET /", 0)
>>> budget.admit(key, (Exemplar("a" * 32, 50, False),))
(Exemplar(trace_id='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', duration_ns=50, is_error=False),)
>>> budget.admit(key, (Exemplar("b" * 32, 40, False),))  # slower one already kept
()
>>> [e.trace_id[0] for e in budget.admit(key, (Exemplar("c" * 32, 10, True),))]  # an error wins
['c']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

from pipeline.windows.red_stats import Exemplar, best_exemplars


class ExemplarBudget:
    """Per key (series and window), the best ``limit`` exemplars admitted so far.

    At most ``max_keys`` keys are remembered (least recently used out first):
    a forgotten window only admits a few more exemplars, it never loses one.
    """

    def __init__(self, limit: int = 3, max_keys: int = 20_000) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._best: OrderedDict[Hashable, tuple[Exemplar, ...]] = OrderedDict()

    def admit(self, key: Hashable, candidates: Sequence[Exemplar]) -> tuple[Exemplar, ...]:
        """The candidates that rank among the best for ``key``; remembers them."""
        kept = self._best.pop(key, ())
        best = best_exemplars((*kept, *candidates), self.limit)
        self._best[key] = best
        while len(self._best) > self.max_keys:
            self._best.popitem(last=False)
        old = {e.trace_id for e in kept}
        return tuple(e for e in best if e.trace_id not in old)
