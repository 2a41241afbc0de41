"""Progress marks in the commit metadata: render/parse round trip, garbage means no marks."""

from __future__ import annotations

import pytest

from pipeline.ingest.progress import Progress

NOTHING = Progress()


@pytest.mark.parametrize(
    "progress",
    [
        Progress(),
        Progress(delivered=41, intent=57, write_mark=60),
        Progress(delivered=0, intent=0, write_mark=0),
        Progress(delivered=-1, intent=None, write_mark=12),
        Progress(delivered=2**62, intent=2**62 + 1, write_mark=2**62),
        Progress(delivered=3, write_mark=9, done=((5, 7), (9, 9))),
    ],
)
def test_render_parse_round_trip(progress: Progress) -> None:
    rendered = progress.render()
    assert Progress.parse(rendered) == progress
    assert len(rendered) < 100  # Kafka brokers cap offset metadata (4096 by default)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, NOTHING),
        ("", NOTHING),
        ("garbage", NOTHING),
        ("=;;=", NOTHING),
        ("d=", NOTHING),
        ("d=abc;w=1.5", NOTHING),
        ("d=--5", NOTHING),  # once crashed: "--5".lstrip("-") is digits, int() is not
        ("w=\u00b2", NOTHING),  # superscript two: isdigit() but not int()
        ("d=\u0663", NOTHING),  # Arabic-Indic three: int() would read it as 3
        ("y=5;d=3", Progress(delivered=3)),  # an unknown mark is ignored
        ("x=5;d=3", Progress(delivered=3, done=((5, 5),))),
        ("d=3;x=9-", Progress(delivered=3)),  # a broken range: no x rather than a guess
        ("d=3;x=-4", Progress(delivered=3)),
        ("d=3;x=4,,6", Progress(delivered=3)),
        ("w=9;d=4", Progress(delivered=4, write_mark=9)),  # order does not matter
        ("d=1;d=2", Progress(delivered=2)),  # the last one wins
        ("d=3;i=oops;w=7", Progress(delivered=3, write_mark=7)),  # a bad mark alone is dropped
        (" d=3", Progress()),  # not what render writes: no marks rather than a guess
    ],
)
def test_parse_tolerates_garbage(raw: str | None, expected: Progress) -> None:
    assert Progress.parse(raw) == expected


def test_decided_ahead_ranges_are_cut_to_fit_the_brokers_metadata_limit() -> None:
    many = tuple((i, i) for i in range(0, 20_000, 2))
    rendered = Progress(delivered=1, write_mark=1, done=many).render()
    assert len(rendered) < 4096
    back = Progress.parse(rendered)
    assert back.done == many[: len(back.done)] and 100 < len(back.done) < len(many)
