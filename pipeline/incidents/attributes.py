"""Attributes over-represented among an incident's abnormal spans (pure).

Input: spans of the top candidate in the incident's windows, each with its
attributes (resource and span, one flat mapping) and whether it is *abnormal*
(an originating error, or a self time well above its operation's baseline).
For each attribute of a bounded set (:data:`KEYS`: pod, node, version, status
codes, error type), a value is *named* when it covers at least ``min_share`` of
the abnormal spans and at least ``min_lift`` more (in share) than among the
normal spans of the same windows: "all slow spans are on pod checkout-66a1-2".

Where the spans come from is the shell's choice: the worker reads the kept
traces (errors, slow traces and flagged operations' exemplars are kept by tail
sampling, plus the baseline share) from ``otel_traces``, once per incident change;
``docs/incidents.md`` gives the cost argument.

>>> spans = [({"k8s.pod.name": "p1"}, True)] * 9 + [({"k8s.pod.name": "p2"}, True)]
>>> spans += [({"k8s.pod.name": p}, False) for p in ("p1", "p2", "p3", "p4") * 5]
>>> [(n.key, n.value, round(n.share, 2), round(n.normal_share, 2)) for n in over_represented(spans)]
[('k8s.pod.name', 'p1', 0.9, 0.25)]
>>> named_line(over_represented(spans))
'90% of abnormal spans have k8s.pod.name=p1 (25% of normal ones)'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: The attributes compared (bounded: instance, version, status and error type).
KEYS = (
    "k8s.pod.name",
    "host.name",
    "service.version",
    "http.response.status_code",
    "rpc.grpc.status_code",
    "error.type",
    "exception.type",
)


@dataclass(frozen=True, slots=True)
class Named:
    """An attribute value over-represented among abnormal spans."""

    key: str
    value: str
    share: float
    normal_share: float


def over_represented(
    spans: Iterable[tuple[Mapping[str, object], bool]],
    *,
    keys: tuple[str, ...] = KEYS,
    min_abnormal: int = 5,
    min_share: float = 0.7,
    min_lift: float = 0.3,
) -> list[Named]:
    """Named values, most over-represented first (empty below ``min_abnormal`` abnormal spans)."""
    # Shares are among the spans that carry the attribute at all.
    abnormal: Counter[tuple[str, str]] = Counter()
    normal: Counter[tuple[str, str]] = Counter()
    having: Counter[tuple[bool, str]] = Counter()
    n_abnormal = 0
    for attrs, is_abnormal in spans:
        counter = abnormal if is_abnormal else normal
        n_abnormal += is_abnormal
        for key in keys:
            if key in attrs:
                counter[(key, str(attrs[key]))] += 1
                having[(is_abnormal, key)] += 1
    if n_abnormal < min_abnormal:
        return []
    out = []
    for (key, value), n in abnormal.items():
        share = n / having[(True, key)]
        n_normal = having[(False, key)]
        base = normal[(key, value)] / n_normal if n_normal else 0.0
        if share >= min_share and share - base >= min_lift:
            out.append(Named(key, value, share, base))
    return sorted(out, key=lambda x: (-(x.share - x.normal_share), x.key, x.value))


def named_line(named: Iterable[Named], limit: int = 3) -> str:
    """One line for the incident record ("" when nothing is named)."""
    parts = [
        f"{n.share:.0%} of abnormal spans have {n.key}={n.value}"
        f" ({n.normal_share:.0%} of normal ones)"
        for n in list(named)[:limit]
    ]
    return "; ".join(parts)
