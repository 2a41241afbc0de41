"""The marker a paused ingest source sends so that its windows wait for it.

See rule 8 ("Holding") in :mod:`pipeline.windows.watermark`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.checked import count, parse_json, record


@dataclass(frozen=True)
class Hold:
    """'Source ``source_partition`` is alive but paused': keeps its windows open.

    >>> Hold.from_json(Hold(3).to_json())
    Hold(source_partition=3)
    >>> Hold.is_hold(Hold(3).to_json()), Hold.is_hold(b'{"service": "shop"}')
    (True, False)
    """

    source_partition: int

    def to_json(self) -> bytes:
        return json.dumps({"hold": self.source_partition}).encode()

    @staticmethod
    def is_hold(value: bytes) -> bool:
        return value.startswith(b'{"hold"')

    @classmethod
    def from_json(cls, value: bytes) -> Hold:
        """Checked (``StateError``, a ValueError): a partials record is untrusted."""
        data = record(parse_json(value), "hold", ["hold"])
        return cls(count(data["hold"], "hold", 2**31 - 1))
