"""The marks of one input partition: their format in the consumer group's commit metadata.

Kafka keeps a metadata string next to each committed offset; spanstream keeps
the partition's marks there. When each mark is committed, and why, is the
commit protocol (:mod:`pipeline.ingest.commit`); workers of another version
read the same string during a rolling upgrade, so the format stays as it is:
``;``-separated ``key=value`` items, unknown keys ignored.

``d`` (delivered)
    window partials of every offset up to ``d`` reached the partials topic.
``i`` (intent)
    a cut at offset ``i`` was announced; its partials may or may not have been sent.
``w`` (write mark)
    kept spans of offsets up to ``w`` may already be in ``otel_traces``.
``x`` (decided ahead, only in the commit of a clean hand-over)
    offset ranges at or after the commit position whose traces are already
    decided and handled (written or dropped).

>>> p = Progress.parse("d=41;i=57;w=60")
>>> p
Progress(delivered=41, intent=57, write_mark=60, done=())
>>> Progress.parse(p.render()) == p
True
>>> Progress.parse("")
Progress(delivered=-1, intent=None, write_mark=-1, done=())
>>> Progress.parse("garbage")
Progress(delivered=-1, intent=None, write_mark=-1, done=())
>>> ahead = Progress(40, None, 60, done=((42, 50), (53, 53)))
>>> ahead.render()
'd=40;w=60;x=42-50,53'
>>> Progress.parse(ahead.render()).is_done(45), ahead.is_done(51)
(True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII only: str.isdigit() also accepts "²" and "٣", which int() rejects or reads.
_MARK = re.compile(r"-?[0-9]{1,19}")
_RANGES = re.compile(r"[0-9]{1,19}(-[0-9]{1,19})?(,[0-9]{1,19}(-[0-9]{1,19})?)*")

#: Kafka refuses commit metadata over ``offset.metadata.max.bytes`` (4096 by default)
#: and the whole commit with it; ``x`` ranges beyond this many characters are left out
#: (their records are then replayed and checked against the store: safe, just slower).
MAX_DONE_CHARS = 2048

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Progress:
    """The marks of one partition; -1/None/() mean "nothing yet"."""

    delivered: int = -1
    intent: int | None = None
    write_mark: int = -1
    #: inclusive offset ranges decided ahead of the commit position (the ``x`` mark)
    done: Ranges = ()

    def is_done(self, offset: int) -> bool:
        """True if ``offset`` lies in a decided-ahead range."""
        return any(first <= offset <= last for first, last in self.done)

    def render(self) -> str:
        parts = [f"d={self.delivered}", f"w={self.write_mark}"]
        if self.intent is not None:
            parts.insert(1, f"i={self.intent}")
        if self.done:
            parts.append(f"x={_render_ranges(self.done)}")
        return ";".join(parts)

    @classmethod
    def parse(cls, raw: str | None) -> Progress:
        """Read marks written by :meth:`render`; anything unreadable means no marks."""
        fields: dict[str, int] = {}
        done: Ranges = ()
        for item in (raw or "").split(";"):
            key, _, value = item.partition("=")
            if key in ("d", "i", "w") and _MARK.fullmatch(value):
                fields[key] = int(value)
            elif key == "x" and _RANGES.fullmatch(value):
                done = _parse_ranges(value)
        return cls(fields.get("d", -1), fields.get("i"), fields.get("w", -1), done)


def to_ranges(offsets: list[int]) -> Ranges:
    """Sorted offsets -> inclusive runs.

    >>> to_ranges([3, 4, 5, 9, 11, 12])
    ((3, 5), (9, 9), (11, 12))
    """
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and offset == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return tuple(runs)


def _render_ranges(ranges: Ranges) -> str:
    out: list[str] = []
    length = 0
    for first, last in ranges:
        item = str(first) if first == last else f"{first}-{last}"
        length += len(item) + 1
        if length > MAX_DONE_CHARS:
            break  # the lowest ranges matter most: the next owner reads them first
        out.append(item)
    return ",".join(out)


def _parse_ranges(value: str) -> Ranges:
    ranges = []
    for item in value.split(","):
        first, _, last = item.partition("-")
        ranges.append((int(first), int(last or first)))
    return tuple(ranges)
