"""Detector state as plain, versioned, schema-checked JSON values (never pickle).

A detector's learned state lives in the ``detectors`` Faust table, whose
changelog topic anyone with write access to the topic can append to: a stored
state is untrusted input. So every detector writes its state with
:meth:`~pipeline.detect.base.Detector.to_state` as JSON-safe values only
(dicts, lists, str, int, float, bool, None) tagged with its kind and a format
version, and reads it back with ``load_state`` into a detector freshly built
from the worker's own configuration: the configuration (sizes included:
trees, season length) never comes from the stored state, and every value is
checked (type, length, finite number, range) before it is used. Anything
else raises :class:`StateError`, whose ``reason`` is a short fixed label for
the rejection counter.
"""

from __future__ import annotations

from pipeline.checked import StateError
from pipeline.detect.base import Detector


def from_state(state: object, fresh: Detector) -> Detector:
    """``fresh`` (built from the worker's configuration) with ``state`` loaded into it.

    Raises :class:`StateError` if ``state`` does not parse; ``fresh`` must then
    be discarded (it may hold part of the state).
    """
    try:
        fresh.load_state(state)
    except StateError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError) as exc:
        # A check this module missed must still reject, not escape as a crash.
        raise StateError("schema", f"{type(exc).__name__}: {exc}"[:200]) from None
    return fresh
