"""Run detectors over the labelled scenarios and tabulate the metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from pipeline.detect.base import WARNING_SCORE, Detector
from pipeline.evaluate import metrics
from pipeline.evaluate.scenarios import SCENARIOS, WINDOWS_PER_DAY, Scenario, Series


@dataclass(frozen=True)
class Row:
    """Metrics of one detector on one scenario (None where undefined, e.g. no events)."""

    detector: str
    scenario: str
    events: int
    recall: float | None
    precision: float | None
    f1: float | None
    delay_p50: float | None
    delay_p90: float | None
    false_per_day: float
    auc_pr: float | None


def run_series(detector: Detector, series: Series) -> list[float]:
    """Scores of every window, score-then-learn as in the pipeline."""
    scores = []
    for x in series.features:
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    return scores


def _row(name: str, scenario: str, runs: Sequence[tuple[Series, list[float]]]) -> Row:
    counts = metrics.Counts()
    labels: list[bool] = []
    scores: list[float] = []
    for series, s in runs:
        counts += metrics.count(series.labels, [v >= WARNING_SCORE for v in s])
        labels += series.labels
        scores += s
    recall, precision = metrics.event_recall(counts), metrics.onset_precision(counts)
    p50, p90 = metrics.delay_quantiles(counts.delays)
    return Row(
        name,
        scenario,
        counts.events,
        recall,
        precision,
        metrics.f1(precision, recall),
        p50,
        p90,
        counts.false_onsets / (len(labels) / WINDOWS_PER_DAY),
        metrics.average_precision(labels, scores),
    )


def evaluate_scenario(
    factories: Mapping[str, Callable[[], Detector]],
    scenario: Scenario,
    days: int,
    seeds: Sequence[int],
) -> list[Row]:
    """One row per detector; each simulated operation (one per seed) gets fresh models."""
    runs: dict[str, list[tuple[Series, list[float]]]] = {name: [] for name in factories}
    for seed in seeds:
        series = scenario.generate(days, seed)
        for name, factory in factories.items():
            runs[name].append((series, run_series(factory(), series)))
    return [_row(name, scenario.name, r) for name, r in runs.items()]


def evaluate(
    factories: Mapping[str, Callable[[], Detector]],
    days: int,
    seed: int,
    ops: int,
    jobs: int = 1,
    scenarios: Sequence[Scenario] = SCENARIOS,
) -> list[Row]:
    """The full table, detector-major: every detector on every scenario, ``ops`` operations each.

    Factories must be picklable (e.g. ``functools.partial``) when ``jobs > 1``.
    """
    seeds = [seed * 1000 + i for i in range(ops)]
    args = [(factories, sc, days, seeds) for sc in scenarios]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            per_scenario = list(pool.map(evaluate_scenario, *zip(*args, strict=True)))
    else:
        per_scenario = [evaluate_scenario(*a) for a in args]
    return [rows[i] for i in range(len(factories)) for rows in per_scenario]


COLUMNS = (
    "detector",
    "scenario",
    "events",
    "recall",
    "onset_prec",
    "f1",
    "delay_p50",
    "delay_p90",
    "fa/day",
    "auc_pr",
)


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
    """Render rows as aligned text or as a Markdown table."""
    cells = [[_cell(getattr(r, f)) for f in Row.__dataclass_fields__] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(COLUMNS)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*COLUMNS)] + [fmt.format(*c) for c in cells])
