"""Scenario 4: ClickHouse unavailable -- skipped for the default (embedded chdb) store.

chdb runs inside the worker process: there is no server to stop and no port
to block. File-level faults (a read-only or full data directory under an
engine that already holds it open) were not tried: they risk the very data the
accounting must read back, and their effect on an open engine is undefined.
Making the store fail from inside would need a fault hook in production code,
which this suite does not add. With a ClickHouse *server* (``SPANSTREAM_CLICKHOUSE=
clickhouse://...``, see ``pipeline/testing/clickhouse_server.py``) the scenario
becomes possible: stop the server mid-stream, check that the worker backs off
(``SinkUnavailable`` -> paused consumption, nothing committed), restart it and
account as in the kill scenario. That variant is not written yet.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.faults


@pytest.mark.skip(
    reason="chdb is in-process: no clean way to make it fail from outside the worker "
    "without a production fault hook (see module docstring)"
)
def test_clickhouse_outage_backs_off_and_loses_nothing() -> None:
    raise AssertionError("not reached")
