"""Buffering, cardinality and record-size limits."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings


def test_dlq_max_value_bytes_is_read_and_bounded_under_the_producer_limit() -> None:
    assert load_settings({}).dlq_max_value_bytes == 524_288
    assert load_settings({"SPANSTREAM_DLQ_MAX_VALUE_BYTES": "1000"}).dlq_max_value_bytes == 1000
    with pytest.raises(ConfigError, match=r"SPANSTREAM_DLQ_MAX_VALUE_BYTES=2000000: must be in"):
        load_settings({"SPANSTREAM_DLQ_MAX_VALUE_BYTES": "2000000"})
