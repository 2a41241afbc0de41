"""What the forwarder has delivered: the highest version per ``alert_id``, and what fires now.

A message whose version is not above the highest one already delivered for its
``alert_id`` is stale (a duplicate from an at-least-once producer, or an older
version read after a newer one) and is not sent again: a late ``firing`` v2 must
not revive an alert whose ``resolved`` v5 went out. The alerts firing now are
re-posted to Alertmanager every resend interval (:mod:`~pipeline.delivery.mapping`).

Both maps are bounded (the alert topic is writable by others): past ``capacity``
the least recently updated ``alert_id`` is forgotten.

>>> ledger = Ledger()
>>> fire = {"alert_id": "a", "version": 1, "status": "firing"}
>>> ledger.is_new(fire)
True
>>> ledger.record(fire)
>>> ledger.is_new(fire), [m["version"] for m in ledger.firing()]
(False, [1])
>>> ledger.record({"alert_id": "a", "version": 3, "status": "resolved"})
>>> ledger.is_new({"alert_id": "a", "version": 2, "status": "firing"}), ledger.firing()
(False, [])
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: Alert ids remembered (and alerts kept firing) at most.
DEFAULT_CAPACITY = 100_000


class Ledger:
    """Highest delivered version per ``alert_id`` and the latest message of each firing one."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._firing: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def is_new(self, message: dict[str, Any]) -> bool:
        """True when ``message`` is above every version delivered for its ``alert_id``."""
        return int(message["version"]) > self._versions.get(str(message["alert_id"]), 0)

    def record(self, message: dict[str, Any]) -> None:
        """Note ``message`` as delivered (or dead-lettered): nothing older goes out after it."""
        alert_id = str(message["alert_id"])
        if not self.is_new(message):
            return
        _put(self._versions, alert_id, int(message["version"]), self.capacity)
        if message["status"] == "firing":
            _put(self._firing, alert_id, message, self.capacity)
        else:
            self._firing.pop(alert_id, None)

    def firing_message(self, alert_id: str) -> dict[str, Any] | None:
        """The latest firing message delivered for ``alert_id``, if it still fires."""
        return self._firing.get(alert_id)

    def firing(self) -> list[dict[str, Any]]:
        """The latest message of every alert firing now, oldest update first."""
        return list(self._firing.values())

    def __len__(self) -> int:
        return len(self._versions)


def _put(table: OrderedDict[str, Any], key: str, value: Any, capacity: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > capacity:
        table.popitem(last=False)
