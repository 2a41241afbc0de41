"""Per-partition delivery progress, stored in the consumer group's commit metadata.

Kafka keeps a metadata string next to each committed offset. spanstream puts
three marks there, committed *before* the side effect they announce, so a
worker that takes the partition over after a crash knows exactly what may
already have happened:

``d`` (delivered)
    window partials of every offset up to ``d`` reached the partials topic.
``i`` (intent)
    a cut at offset ``i`` was announced; its partials may or may not have been
    sent. The next owner cuts at exactly ``i`` again, so a resend is
    byte-identical and the window assembler drops it as a duplicate.
``w`` (write mark)
    kept spans of offsets up to ``w`` may already be in ``otel_traces``; a
    replayed trace touching those offsets is checked against the table first.

>>> p = Progress.parse("d=41;i=57;w=60")
>>> p
Progress(delivered=41, intent=57, write_mark=60)
>>> Progress.parse(p.render()) == p
True
>>> Progress.parse("")
Progress(delivered=-1, intent=None, write_mark=-1)
>>> Progress.parse("garbage")
Progress(delivered=-1, intent=None, write_mark=-1)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII only: str.isdigit() also accepts "²" and "٣", which int() rejects or reads.
_MARK = re.compile(r"-?[0-9]{1,19}")


@dataclass(frozen=True)
class Progress:
    """The marks of one partition; -1/None mean "nothing yet"."""

    delivered: int = -1
    intent: int | None = None
    write_mark: int = -1

    def render(self) -> str:
        parts = [f"d={self.delivered}", f"w={self.write_mark}"]
        if self.intent is not None:
            parts.insert(1, f"i={self.intent}")
        return ";".join(parts)

    @classmethod
    def parse(cls, raw: str | None) -> Progress:
        """Read marks written by :meth:`render`; anything unreadable means no marks."""
        fields: dict[str, int] = {}
        for item in (raw or "").split(";"):
            key, _, value = item.partition("=")
            if key in ("d", "i", "w") and _MARK.fullmatch(value):
                fields[key] = int(value)
        return cls(fields.get("d", -1), fields.get("i"), fields.get("w", -1))
