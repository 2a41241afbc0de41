"""A calibrated detector: the score is a tail probability under a self-scaling robust model.

Per feature, in the feature's transformed space (``FeatureSpec.encode``), each
point is compared with up to four *views* of what was expected:

* ``level``: the median of the last ``location_window`` values. A median has
  bounded influence, so alarmed points are learnt too without dragging it, and a
  level shift is absorbed after half the window (no rebaseline rule needed);
* ``season`` (``season_length > 0``): the median of the values one, two and
  three seasons ago (``spanstream detect`` sets a day from the sampling interval);
* ``change`` (``change_view = 1``, the default): the previous value;
* ``sustained`` (``sustain > 1``, default 6): the mean of the last ``sustain``
  level residuals, so a shift held for a few points is improbable as a mean
  before any one point is (the tail probability of a short-window mean).

Each view keeps the last ``scale_window`` of its *directed* residuals (only
the alerting direction counts). The tail probability of a new residual ``d``
is read from that window: empirically, ``(m + 1) / (N + 1)`` with ``m``
residuals at least ``d``, while ``d`` is within the largest ``tail_fraction``
of them; beyond, from an exponential tail fitted to those (peaks over
threshold, the mean excess at its upper one-sd bound), but never rarer than
the count of past residuals at least ``d`` says: a daily spike seen three times
in the window is a one-in-``N/4`` event, however thin the fitted tail. So the
scale is the series' own, a bimodal or heavy-tailed series is judged by its
real tail, and the probability never underflows. A view is read once it holds
``warmup - 1`` residuals (the season view one season later). The mean excess is floored at
``resolution / sqrt(12)``, the sd of rounding to the data's own quantisation
step (``resolution``: the smallest non-zero gap seen between consecutive
values, 1 for integer counts): a sparse, stepped or integer series cannot
collapse its scale, and nothing depends on the level.

The score: ``L = -log10 p`` of the most improbable look (a view of a feature),
less ``log10`` of the number of looks taken at this point (Bonferroni over
the views read times the features read: five features at one in a thousand
each would alarm five times as often), then ``L / (L + L0)`` with ``L0 = -log10
alert_probability``. 0.5 means "as improbable as ``alert_probability``" on every
series; the score is monotone in ``L`` and reaches 1.0 (to 6 decimals) only at
``L`` a million times ``L0``.

One alarm per onset: after a score >= 0.5 the detector is *refractory* for
``refractory`` points: it keeps learning and scoring, but halves its score, so
the rest of the episode ranks below a new onset and stays below the alert
threshold; that is about the time the level view needs to absorb a lasting
shift (half the location window). ``refractory = 0`` reports raw scores.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.checked import StateError, count, header, number, numbers, per_name, record
from pipeline.detect.base import (
    WARNING_SCORE,
    WINDOW_SPECS,
    Detector,
    Deviation,
    Features,
    FeatureSpec,
    read,
)
from pipeline.detect.expectation import MAX_VALUE

_LN10 = math.log(10.0)
_SQRT12 = math.sqrt(12.0)
_LOG10_2 = math.log10(2.0)


@dataclass(frozen=True)
class TailConfig:
    """Parameters of the tail-probability detector (windows are in points).

    ``alert_probability`` is the tail probability that scores 0.5;
    ``tail_fraction`` the share of the residual window whose largest values
    fit the exponential tail. ``season_length`` is 0 (off) for the pipeline's
    windows: a day of 60 s windows, three times, is 4,320 values per feature of
    state; ``spanstream detect`` sets it to a day of the series' points.
    """

    alert_probability: float = 1e-3
    location_window: int = 60
    scale_window: int = 1000
    tail_fraction: float = 0.1
    warmup: int = 30
    refractory: int = 30
    change_view: int = 1
    season_length: int = 0
    season_cycles: int = 3
    sustain: int = 6


def neg_log10_tail(d: float, ordered: list[float], frac: float, floor: float) -> float:
    """``-log10 P(D >= d)`` from the sorted window of past directed residuals ``D``.

    Empirical, ``(m + 1) / (N + 1)`` with ``m`` past residuals at least ``d``,
    while ``d`` is within the window's top ``k = frac * N``; beyond, the
    exponential tail fitted to those ``k`` (peaks over threshold: excesses over
    the ``k``-th largest ``u`` have mean ``sigma``, taken at its upper one-sd
    bound and at least ``floor``), but never rarer than the empirical count while
    any past residual reached ``d`` (three such spikes in the window make ``d``
    a one-in-``N/4`` event, however thin the fitted tail); past the window's
    maximum the result is unbounded, linear in ``d`` and never underflows.

    >>> round(neg_log10_tail(0.5, [0.0, 1.0, 2.0, 3.0], 0.5, 0.1), 3)  # 3 of 4 >= 0.5
    0.097
    >>> # k = 2: u = 2.0, sigma = 0.5 (1 + 1/sqrt(2)) = 0.854: log10(5/2) + 11 / (0.854 ln 10)
    >>> round(neg_log10_tail(13.0, [0.0, 1.0, 2.0, 3.0], 0.5, 0.1), 2)
    5.99
    """
    n = len(ordered)
    if d <= 0.0 or not n:
        return 0.0
    k = max(1, math.ceil(frac * n))
    m = n - bisect.bisect_left(ordered, d)
    if m >= k:
        return math.log10((n + 1) / (m + 1))
    top = ordered[n - k :]
    u = top[0]
    # The mean excess of k points is uncertain by ~1/sqrt(k): take its upper one-sd
    # bound, so a short history under-alarms rather than over-alarms.
    sigma = max((sum(top) / k - u) * (1.0 + 1.0 / math.sqrt(k)), floor)
    fitted = math.log10((n + 1) / k) + (d - u) / (sigma * _LN10)
    # m past residuals as large as d were seen: d is no rarer than they say, whatever the fit.
    return min(fitted, math.log10((n + 1) / (m + 1))) if m else fitted


def quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of a sorted, non-empty list.

    >>> quantile([0.0, 10.0], 0.25)
    2.5
    """
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])


VIEWS = ("level", "change", "season", "sustained")
"""What each residual is measured against: the recent median, the previous
value, the median of the same point in the last ``season_cycles`` seasons."""


@dataclass
class _Window:
    """A bounded window of directed residuals and its sorted twin."""

    items: deque[float]
    ordered: list[float] = field(default_factory=list)

    def push(self, v: float) -> None:
        if self.items.maxlen is not None and len(self.items) == self.items.maxlen:
            self.ordered.pop(bisect.bisect_left(self.ordered, self.items[0]))
        self.items.append(v)
        bisect.insort(self.ordered, v)


@dataclass
class _Feature:
    values: _Window
    residuals: dict[str, _Window]
    history: deque[float]
    recent: deque[float]
    n: int = 0
    resolution: float = 0.0
    last: float = 0.0


class TailDetector(Detector):
    """Robust location/scale per feature; the score is a calibrated tail probability.

    >>> d = TailDetector(TailConfig(warmup=5))
    >>> for i in range(40):
    ...     d.learn_one({"requests": 100 + i % 5, "error_ratio": 0.01, "p50_ms": 20 + i % 3,
    ...                  "p95_ms": 80 + i % 4, "p99_ms": 120 + i % 7})
    >>> d.score_one({"requests": 100, "error_ratio": 0.01, "p50_ms": 20,
    ...              "p95_ms": 80, "p99_ms": 900}) > 0.8
    True
    """

    name = "tail"
    #: Format version of :meth:`to_state`.
    STATE_VERSION = 1

    def __init__(
        self, config: TailConfig | None = None, specs: tuple[FeatureSpec, ...] = WINDOW_SPECS
    ) -> None:
        cfg = self.config = config or TailConfig()
        self.specs = specs
        self.quiet = 0
        self.views = ("level",) + ("change",) * bool(cfg.change_view)
        self.views += ("season",) * bool(cfg.season_length > 0 and cfg.season_cycles > 0)
        self.views += ("sustained",) * bool(cfg.sustain > 1)
        self.states = {s.name: self._new_feature() for s in specs}
        self._l0 = -math.log10(cfg.alert_probability)

    def _new_feature(self) -> _Feature:
        cfg = self.config
        return _Feature(
            _Window(deque(maxlen=cfg.location_window)),
            {v: _Window(deque(maxlen=cfg.scale_window)) for v in self.views},
            deque(maxlen=cfg.season_length * cfg.season_cycles if "season" in self.views else 0),
            deque(maxlen=max(cfg.sustain - 1, 0)),
        )

    @staticmethod
    def _floor(st: _Feature, v: float) -> float:
        """The sd of rounding to the data's resolution: the tail can be no steeper.

        A series constant so far has shown no resolution: its first change is
        taken as its step, so it is a few floors away, not infinitely many.
        """
        return (st.resolution or abs(v - st.last) or 1.0) / _SQRT12

    def _expected(self, st: _Feature) -> dict[str, float]:
        """Each view's expected value for the next point (a view without history is absent)."""
        out = {"level": quantile(st.values.ordered, 0.5), "change": st.last}
        if "season" in self.views:
            period, h = self.config.season_length, st.history
            cycles = range(1, self.config.season_cycles + 1)
            past = sorted(h[-period * j] for j in cycles if len(h) >= period * j)
            if past:
                out["season"] = quantile(past, 0.5)
        return out

    def _tail(self, spec: FeatureSpec, x: Features) -> tuple[float, int, float] | None:
        """``-log10 p`` of the feature's most improbable view, the views read, and the level."""
        v = read(spec, x)
        st = self.states[spec.name]
        if v is None or st.n < max(self.config.warmup, 2):
            return None
        floor, frac = self._floor(st, v), self.config.tail_fraction
        least = max(self.config.warmup - 1, 1)
        # A view is read once it has a warm-up of residuals: the season view's first
        # few residuals would otherwise make anything look improbable.
        tails = [
            neg_log10_tail(d, w.ordered, frac, floor)
            for view, d in self._deviations(spec, st, v).items()
            if len((w := st.residuals[view]).ordered) >= least
        ]
        return max(tails, default=0.0), len(tails), quantile(st.values.ordered, 0.5)

    def _tails(self, x: Features) -> tuple[dict[str, tuple[float, float]], float]:
        """Per feature read: ``-log10 p`` and the level; and ``log10`` of the looks taken.

        Bonferroni: the most improbable of ``n`` looks (views x features read) has
        its p multiplied by ``n``, so more views or features raise no more alarms.
        """
        out, looks = {}, 0
        for spec in self.specs:
            if t := self._tail(spec, x):
                out[spec.name] = (t[0], t[2])
                looks += t[1]
        return out, math.log10(max(looks, 1))

    def _deviations(self, spec: FeatureSpec, st: _Feature, v: float) -> dict[str, float]:
        """Each view's directed deviation of ``v`` (a view without history is absent).

        ``sustained`` is the mean of the last ``sustain`` level residuals: a shift
        too small for any one point, but held, is improbable as a mean.
        """
        expected = self._expected(st)
        out = {k: spec.directed(v - e) for k, e in expected.items() if k in st.residuals}
        if "sustained" in st.residuals:
            recent = (sum(st.recent) + v - expected["level"]) / (len(st.recent) + 1)
            out["sustained"] = spec.directed(recent)
        return out

    def _raw(self, x: Features) -> float:
        tails, looks = self._tails(x)
        worst = max(max((t[0] for t in tails.values()), default=0.0) - looks, 0.0)
        return worst / (worst + self._l0)

    def score_one(self, x: Features) -> float:
        """The calibrated score, halved while refractory after an alarm."""
        raw = self._raw(x)
        return 0.5 * raw if self.quiet > 0 else raw

    def explain_one(self, x: Features) -> tuple[Deviation, ...]:
        tails, looks = self._tails(x)
        return tuple(
            Deviation(spec.name, float(x[spec.name]), spec.decode(t[1]))
            for spec in self.specs
            if (t := tails.get(spec.name)) and t[0] - looks >= self._l0
        )

    def learn_one(self, x: Features) -> None:
        """Every point is learnt (medians bound its pull); an alarm starts the refractory."""
        alarm = self._raw(x) >= WARNING_SCORE and self.quiet == 0
        self.quiet = self.config.refractory if alarm else max(self.quiet - 1, 0)
        for spec in self.specs:
            v = read(spec, x)
            if v is not None:
                self._learn(spec, self.states[spec.name], v)

    def _learn(self, spec: FeatureSpec, st: _Feature, v: float) -> None:
        if st.n:
            gap = abs(v - st.last)
            if gap > 0.0 and (st.resolution == 0.0 or gap < st.resolution):
                st.resolution = gap
            for view, d in self._deviations(spec, st, v).items():
                st.residuals[view].push(d)
            st.recent.append(v - quantile(st.values.ordered, 0.5))
        st.n += 1
        st.last = v
        st.values.push(v)
        st.history.append(v)

    def to_state(self) -> dict[str, Any]:
        """Per feature: the windows, season history, point count, resolution and last value."""
        return {
            "kind": self.name,
            "v": self.STATE_VERSION,
            "quiet": self.quiet,
            "features": {
                name: {
                    "values": list(st.values.items),
                    "residuals": {k: list(w.items) for k, w in st.residuals.items()},
                    "history": list(st.history),
                    "recent": list(st.recent),
                    "n": st.n,
                    "resolution": st.resolution,
                    "last": st.last,
                }
                for name, st in self.states.items()
            },
        }

    def load_state(self, state: object) -> None:
        """Exactly this detector's features and views; windows no longer than configured."""
        data = header(state, self.name, self.STATE_VERSION, ["quiet", "features"])
        self.quiet = count(data["quiet"], "tail.quiet", self.config.refractory)
        names = [s.name for s in self.specs]
        self.states = per_name(data["features"], "features", names, self._load_feature)

    def _load_feature(self, value: object, where: str) -> _Feature:
        keys = ["values", "residuals", "history", "recent", "n", "resolution", "last"]
        data = record(value, where, keys)
        cfg, st = self.config, self._new_feature()
        big = MAX_VALUE
        for v in numbers(data["values"], f"{where}.values", cfg.location_window, -big, big):
            st.values.push(v)
        resid = record(data["residuals"], f"{where}.residuals", list(self.views))
        for view, window in st.residuals.items():
            at = f"{where}.residuals.{view}"
            for r in numbers(resid[view], at, cfg.scale_window, 0.0, 2 * big):
                window.push(r)
        limit = st.history.maxlen or 0
        st.history.extend(numbers(data["history"], f"{where}.history", limit, -big, big))
        limit = st.recent.maxlen or 0
        st.recent.extend(numbers(data["recent"], f"{where}.recent", limit, -2 * big, 2 * big))
        st.n = count(data["n"], f"{where}.n")
        st.resolution = number(data["resolution"], f"{where}.resolution", 0.0, big)
        st.last = number(data["last"], f"{where}.last", -big, big)
        # Windows longer than the count of points seen cannot come from this detector.
        sizes = [len(st.values.items), len(st.history)] + [
            len(w.items) + 1 for w in st.residuals.values()
        ]
        if (st.n == 0) != (not st.values.items) or max(sizes) > max(st.n, 1):
            raise StateError("schema", f"{where}: windows inconsistent with n={st.n}")
        return st
