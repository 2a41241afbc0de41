"""Expectation models of the residual detectors, with their checked state (see ``state``).

:class:`Ewma` (an exponentially weighted level) and :class:`HoltWinters`
(River's forecaster with a daily season) answer the same three questions:
is it ready, what is expected next, learn a value; ``shift`` moves the level
after a rebaseline.
"""

from __future__ import annotations

from typing import Any

from pipeline.checked import StateError, count, flag, number, numbers, record

#: Largest value an expectation state may hold: encoded features are logs, square
#: roots and ratios, far below it; beyond it arithmetic could overflow to inf.
MAX_VALUE = 1e12


class Ewma:
    """Exponentially weighted level, with a running mean during warm-up.

    >>> e = Ewma(0.5)
    >>> e.update(4.0); e.update(2.0); e.expected()
    3.0
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.level = 0.0
        self.n = 0

    def ready(self) -> bool:
        return self.n > 0

    def expected(self) -> float:
        return self.level

    def update(self, v: float) -> None:
        self.n += 1
        self.level += max(self.alpha, 1.0 / self.n) * (v - self.level)

    def shift(self, delta: float) -> None:
        self.level += delta

    def to_state(self) -> dict[str, Any]:
        return {"level": self.level, "n": self.n}

    def load_state(self, value: object, where: str) -> None:
        data = record(value, where, ["level", "n"])
        self.level = number(data["level"], f"{where}.level", -MAX_VALUE, MAX_VALUE)
        self.n = count(data["n"], f"{where}.n")


class HoltWinters:
    """River's additive-trend, multiplicative-season Holt-Winters on ``v + 1``.

    The offset keeps values positive (the multiplicative form divides by the
    season); River's additive form initialises its season wrongly (``y / level``).
    """

    OFFSET = 1.0

    def __init__(self, alpha: float, beta: float, gamma: float, season_length: int) -> None:
        from river.time_series import HoltWinters as RiverHoltWinters

        self.model = RiverHoltWinters(
            alpha=alpha, beta=beta, gamma=gamma, seasonality=season_length, multiplicative=True
        )
        self.last = 0.0

    def ready(self) -> bool:
        return bool(self.model._initialized)

    def expected(self) -> float:
        if not self.ready():
            return self.last
        return float(self.model.forecast(1)[0]) - self.OFFSET

    def update(self, v: float) -> None:
        self.last = v
        self.model.learn_one(max(v, 0.0) + self.OFFSET)

    def shift(self, delta: float) -> None:
        season = self.model.season[-self.model.seasonality]
        self.model.level[-1] += delta / season

    def to_state(self) -> dict[str, Any]:
        m = self.model
        return {
            "level": list(m.level),
            "trend": list(m.trend or ()),
            "season": list(m.season or ()),
            # River keeps its first season's values once initialised, unused: not stored.
            "first": [] if m._initialized else list(m._first_values),
            "ready": bool(m._initialized),
            "last": self.last,
        }

    def load_state(self, value: object, where: str) -> None:
        """River's components, each within the length River itself would give it.

        Once initialised, River indexes ``level[-1]``, ``trend[-1]`` and
        ``season[-seasonality]`` and divides by the season: they must be there,
        and the season positive.
        """
        data = record(value, where, ["level", "trend", "season", "first", "ready", "last"])
        m, k = self.model, self.model.seasonality
        ready = flag(data["ready"], f"{where}.ready")
        level = numbers(data["level"], f"{where}.level", 2, -MAX_VALUE, MAX_VALUE)
        trend = numbers(data["trend"], f"{where}.trend", 2, -MAX_VALUE, MAX_VALUE)
        season = numbers(data["season"], f"{where}.season", k + 1, -MAX_VALUE, MAX_VALUE)
        first = numbers(data["first"], f"{where}.first", max(2, k) - 1, 0.0, MAX_VALUE)
        last = number(data["last"], f"{where}.last", -MAX_VALUE, MAX_VALUE)
        if 0.0 in season:
            raise StateError("schema", f"{where}.season: a zero factor (River divides by it)")
        has_trend, has_season = m.trend is not None, m.season is not None
        if (trend and not has_trend) or (season and not has_season):
            raise StateError("schema", f"{where}: a component this configuration does not have")
        complete = (
            bool(level)
            and (bool(trend) or not has_trend)
            and (len(season) >= k or not has_season)
            and not first
        )
        if ready != complete or (not ready and (level or trend or season)):
            shape = "without its components" if ready else "with components, not initialised"
            raise StateError("schema", f"{where}: Holt-Winters {shape}")
        m.level.extend(level)
        if m.trend is not None:
            m.trend.extend(trend)
        if m.season is not None:
            m.season.extend(season)
        m._first_values = first
        m._initialized = ready
        self.last = last
