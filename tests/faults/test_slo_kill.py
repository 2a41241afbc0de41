"""SIGKILL the worker twice while it closes windows and evaluates SLOs: the burn state
comes back from its changelog, nothing is counted twice or lost.

The stream of :mod:`tests.integration.slo.test_burn_kafka` (payment burning at ~14x,
shipping at ~2x) is sent first as a backlog; the worker is killed once SLO rows exist
for 8 windows and again at 16, restarted each time. At the end every window's row
holds the exact pre-sampling counts AND the exact burn rates over every rule window
(sums over the restored ring, so a count lost or taken twice before a kill would show
in every later window's rates), and the page episode keeps one alert id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.local.worker import LocalWorker
from pipeline.slo.burn import evaluate
from pipeline.slo.ring import Ring
from pipeline.slo.spec import format_duration, load_slos
from tests.integration.slo.test_burn_kafka import (
    NS,
    TIMEOUT,
    WINDOW,
    _burn_alerts,
    _generate,
    _reference,
    _rows,
    env,  # noqa: F401  (the fixture)
)

pytestmark = pytest.mark.faults

KILL_AFTER_ROWS = (8, 16)


Rates = dict[tuple[str, int], dict[str, float]]


def _expected_rates(slo_file: str, reference: dict[tuple[str, int], tuple[int, int]]) -> Rates:
    """Burn rates per (SLO, window) the core gives fed every window's reference counts."""
    out: Rates = {}
    for slo in load_slos(slo_file).slos:
        fine, coarse = Ring(WINDOW * NS, 100), Ring(WINDOW * NS, 10**5)
        starts = sorted(s for (name, s) in reference if name == slo.name)
        for start in range(starts[0], starts[-1] + 1, WINDOW * NS):
            fine.add(start, *reference.get((slo.name, start), (0, 0)))
            coarse.add(start, *reference.get((slo.name, start), (0, 0)))
            burn = evaluate(slo, fine, coarse, start, WINDOW * NS)
            out[(slo.name, start)] = {format_duration(k): v for k, v in burn.rates.items()}
    return out


def test_kill_9_while_evaluating_slos_keeps_burn_state_exact(
    kafka_bootstrap: str,
    env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    worker = LocalWorker(
        tmp_path / "w1", bootstrap=kafka_bootstrap, store_url=f"chdb:{tmp_path / 'chdb'}", env=env
    )
    manifest, _ = _generate(kafka_bootstrap, env, tmp_path)
    reference = _reference(manifest)
    rates = _expected_rates(env["SPANSTREAM_SLO_FILE"], reference)
    worker.start()
    try:
        for n in KILL_AFTER_ROWS:

            def enough(n: int = n) -> bool:
                return len(_rows(worker)) >= n

            worker.wait_for(enough, TIMEOUT, f"{n} SLO rows")
            worker.kill()
            worker.start()

        def exact() -> bool:
            rows = _rows(worker)
            counts = {k: (int(v[0]), int(v[1])) for k, v in rows.items() if int(v[1])}
            return counts == reference

        try:
            worker.wait_for(exact, TIMEOUT, "exact SLO rows after the kills")
        except AssertionError:
            got = {k: (int(v[0]), int(v[1])) for k, v in _rows(worker).items() if int(v[1])}
            diff = {k: (got.get(k), reference.get(k)) for k in set(got) | set(reference)
                    if got.get(k) != reference.get(k)}  # fmt: skip
            raise AssertionError(f"rows (got, sent) differ: {sorted(diff.items())}") from None
        rows = _rows(worker)
        assert worker.starts == 3
    finally:
        worker.stop()
    for key, row in rows.items():
        if key in rates:
            assert row[2] == pytest.approx(rates[key]), key
    burn = _burn_alerts(kafka_bootstrap, env["SPANSTREAM_ALERT_TOPIC"])
    firing = [a for a in burn if a["status"] == "firing"]
    assert {a["slo"] for a in burn} == {"payment-avail"}
    assert len({a["alert_id"] for a in burn}) == 1  # one episode, whatever was replayed
    versions = sorted({a["version"] for a in burn})
    assert versions == list(range(1, len(versions) + 1)) and firing
