"""Scenario 0, the control: the same stream with no fault, so fault rows have a reference."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES

pytestmark = pytest.mark.faults


def test_no_fault_stores_every_span(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    rig.generate("stream", TRACES, "--split-traces", "0.2")

    acc = rig.finish("no-fault-control", notes="no fault: the reference row")

    assert acc.lost == 0 and acc.dup_rows == 0 and acc.unexpected == 0
