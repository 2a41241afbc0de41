"""Error policy: any error span keeps the trace."""

from __future__ import annotations

import pytest

from pipeline.sampling.errors import ErrorPolicy
from pipeline.sampling.policy import Decision
from tests.unit.sampling.spans import span, trace_of


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([], Decision.DROP),
        ([False], Decision.DROP),
        ([False, False, False], Decision.DROP),
        ([True], Decision.KEEP),
        ([False, False, True], Decision.KEEP),
    ],
)
def test_error_policy(errors: list[bool], expected: Decision) -> None:
    spans = [span(span_id=f"{i:016x}", error=e) for i, e in enumerate(errors)]
    assert ErrorPolicy().evaluate(trace_of(*spans)) is expected
