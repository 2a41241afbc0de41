"""Burn rates, remaining error budget and multiwindow, multi-burn-rate firing: pure math.

The burn rate over a span of time is the share of bad requests in it divided by the
error budget (``1 - objective/100``): at 1 the budget lasts exactly the compliance
window, at 14.4 a 30-day budget is gone in 50 hours. A rule fires when the burn rate
exceeds its factor over both its long and its short window (the Google SRE workbook,
chapter 5); a severity fires while any of its rules does.

Windows are summed from per-window buckets (:class:`~pipeline.slo.ring.Ring`): a rule
window covers the ``ceil(rule window / window size)`` buckets that end with the window
being evaluated. The remaining budget counts the compliance window in coarser buckets
(:func:`budget_step_ns`).

SRE workbook numbers: a 99.9 % SLO burning at 14.4x for one hour spends 2 % of its
30-day budget.

>>> round(budget_spent(14.4, 3600, 30 * 86400), 6)
0.02
>>> round(burn_rate(Counts(good=9856, total=10000), error_budget=0.001), 6)
14.4
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.slo.ring import Counts, Ring
from pipeline.slo.spec import BurnAlertRule, Slo

#: The compliance window is counted in at most this many buckets (1 hour each for
#: 30 days): its oldest edge moves by one such bucket at a time.
BUDGET_BUCKETS = 720


def burn_rate(counts: Counts, error_budget: float) -> float:
    """Bad share over the error budget; 0 without requests."""
    if counts.total == 0:
        return 0.0
    return (counts.bad / counts.total) / error_budget


def budget_spent(rate: float, seconds: int, compliance_seconds: int) -> float:
    """The share of the budget a steady ``rate`` spends in ``seconds``."""
    return rate * seconds / compliance_seconds


def budget_remaining(counts: Counts, error_budget: float) -> float:
    """``1 - bad / (error_budget * total)`` over the compliance window: 1 untouched, 0
    spent, below 0 overspent; 1 without requests."""
    if counts.total == 0:
        return 1.0
    return 1.0 - counts.bad / (error_budget * counts.total)


def windows_of(seconds: int, window_ns: int) -> int:
    """How many window buckets a rule window of ``seconds`` covers (at least one).

    >>> windows_of(300, 60 * 10**9), windows_of(90, 60 * 10**9), windows_of(5, 60 * 10**9)
    (5, 2, 1)
    """
    return max(1, math.ceil(seconds * 1_000_000_000 / window_ns))


def budget_step_ns(slo: Slo, window_ns: int) -> int:
    """The coarse bucket of the compliance window: whole windows, at most
    :data:`BUDGET_BUCKETS` of them over ``window_days``.

    >>> from pipeline.slo.spec import Slo
    >>> slo = Slo("a", "s", (), "availability", 99.9)
    >>> budget_step_ns(slo, 60 * 10**9) // 10**9  # 30 days in 720 hourly buckets
    3600
    """
    per_bucket = math.ceil(windows_of(slo.window_seconds, window_ns) / BUDGET_BUCKETS)
    return per_bucket * window_ns


def fine_size(slo: Slo, window_ns: int) -> int:
    """Window buckets to keep: enough for the longest long window of the SLO's rules."""
    return max(windows_of(r.long_window_seconds, window_ns) for r in slo.burn_alerts)


@dataclass(frozen=True)
class Burn:
    """One SLO evaluated at one closed window.

    ``window`` holds that window's counts; ``rates`` the burn rate over each rule
    window, keyed by its length in seconds; ``firing`` the severities whose rules fire,
    in rule order; ``triggered`` the first firing rule per severity.
    """

    slo: Slo
    window_start_ns: int
    window_end_ns: int
    window: Counts
    rates: dict[int, float]
    budget_remaining: float
    firing: tuple[str, ...]
    triggered: dict[str, BurnAlertRule]


#: Relative margin a burn rate must exceed its factor by: a rate equal to the factor
#: but for float rounding (144 bad of 10,000 at 99.9 % is 14.400000000000002) is not above.
ROUNDING = 1e-9


def fires(rule: BurnAlertRule, rates: dict[int, float]) -> bool:
    """Both windows burn faster than the rule's factor."""
    bar = rule.factor * (1 + ROUNDING)
    return rates[rule.long_window_seconds] > bar and rates[rule.short_window_seconds] > bar


def evaluate(slo: Slo, fine: Ring, coarse: Ring, window_start_ns: int, window_ns: int) -> Burn:
    """Evaluate ``slo`` at the window starting at ``window_start_ns`` (its buckets are in)."""
    end = window_start_ns + window_ns
    spans = {s for r in slo.burn_alerts for s in (r.long_window_seconds, r.short_window_seconds)}
    rates = {
        s: burn_rate(fine.sum(end, windows_of(s, window_ns) * window_ns), slo.error_budget)
        for s in sorted(spans)
    }
    budget = coarse.sum(end, slo.window_seconds * 1_000_000_000)
    triggered: dict[str, BurnAlertRule] = {}
    for rule in slo.burn_alerts:
        if rule.severity not in triggered and fires(rule, rates):
            triggered[rule.severity] = rule
    return Burn(
        slo=slo,
        window_start_ns=window_start_ns,
        window_end_ns=end,
        window=fine.sum(end, window_ns),
        rates=rates,
        budget_remaining=budget_remaining(budget, slo.error_budget),
        firing=tuple(triggered),
        triggered=triggered,
    )
