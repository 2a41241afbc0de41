"""printable and log escaping: data in log messages cannot forge lines or drive a terminal."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from pipeline.enrich import EnrichConfig, Enricher
from pipeline.printable import install_log_escaping, printable


@pytest.fixture
def escaping() -> Iterator[None]:
    before = logging.getLogRecordFactory()
    install_log_escaping()
    yield
    logging.setLogRecordFactory(before)


def test_every_control_character_is_escaped() -> None:
    unsafe = [*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0))]
    bidi = ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029"]
    bidi += [*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
    for ch in unsafe + bidi:
        assert printable(f"a{ch}b") == f"a\\u{ord(ch):04x}b"


def test_printable_text_is_unchanged() -> None:
    text = "checkout GET /carts/{id} — café 東京 \\x1b"
    assert printable(text) is text


def test_a_log_line_quoting_a_service_name_stays_one_escaped_line(escaping: None) -> None:
    """The enricher's overflow warning names the service that overflowed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("pipeline.enrich")
    logger.addHandler(handler)
    try:
        enricher = Enricher(EnrichConfig(max_services=1))
        enricher.series_service("cart")
        enricher.series_service("x\n\x1b[1;32mINFO all good\x1b[0m\u202e")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.count("\n") == 1
    assert "x\\u000a\\u001b[1;32mINFO all good\\u001b[0m\\u202e" in out
    assert "\x1b" not in out and "\u202e" not in out


def test_installing_twice_keeps_one_escaping_factory(escaping: None) -> None:
    factory = logging.getLogRecordFactory()
    install_log_escaping()
    assert logging.getLogRecordFactory() is factory
