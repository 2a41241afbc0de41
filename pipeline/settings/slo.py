"""SLO settings: where the SLO definitions file is (none by default)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.settings.env import enforce


@dataclass(frozen=True)
class SloOptions:
    """SLOs and burn-rate alerts (environment variable and default)."""

    #: SPANSTREAM_SLO_FILE: the SLO definitions file (YAML, ``schemas/slo/slos.schema.json``;
    #: see docs/slo.md); empty: no SLOs. The worker validates it at start.
    slo_file: str = ""


def check(s: SloOptions) -> None:
    """A set SLO file exists (its content is validated by :func:`pipeline.slo.spec.load_slos`)."""
    enforce(s, [("slo_file", not s.slo_file or os.path.isfile(s.slo_file), "no such file")])
