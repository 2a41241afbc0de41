"""A deterministic baseline: keep a fixed share of traces chosen by hashing the trace id.

The hash is 64-bit FNV-1a over ``salt + trace id bytes`` compared with
``rate * (2**64 - 1)``, as in the Collector's tail-sampling probabilistic
policy, plus one step the Collector lacks: the MurmurHash3 64-bit finalizer.
Plain FNV-1a barely mixes the last bytes, so ids that differ only at the end
(sequential or low-entropy generators) all got the same answer; the finalizer
makes every input bit move the high bits the threshold compares. Decisions
therefore differ from the Collector's, but depend on nothing but the trace id:
every worker, every replay and every late fragment of a trace agree.

>>> fnv1a_64(b"")
14695981039346656037
>>> policy = ProbabilisticPolicy(0.5)
>>> from pipeline.sampling.policy import TraceData
>>> trace = TraceData("4bf92f3577b34da6a3ce929d0e0e4736")
>>> policy.evaluate(trace) == policy.evaluate(trace)
True
"""

from __future__ import annotations

from pipeline import native
from pipeline.sampling.policy import Decision, TraceData

#: The Collector's default ``hash_salt``, so equal settings give equal decisions.
DEFAULT_SALT = "default-hash-seed"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a_64(data: bytes) -> int:
    """64-bit FNV-1a hash of ``data``."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finalizer: a bijection that spreads every bit over all bits."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    return h ^ (h >> 33)


def trace_hash(trace_id: str, salt: bytes = DEFAULT_SALT.encode()) -> int:
    """The 64-bit sampling hash of a trace id: ``fmix64(fnv1a_64(salt + id bytes))``.

    Computed natively (:func:`pipeline.native.trace_hash`): the byte loop in
    Python cost more than all the other policies of a trace together.
    :func:`trace_hash_of` is the definition.
    """
    h: int = native.trace_hash(trace_id, salt)
    return h


def trace_hash_of(trace_id: str, salt: bytes) -> int:
    """The reference of :func:`trace_hash`.

    >>> trace_hash_of("ab", b"") == fmix64(fnv1a_64(bytes([0xAB])))
    True
    """
    return fmix64(fnv1a_64(salt + trace_id_bytes(trace_id)))


def trace_id_bytes(trace_id: str) -> bytes:
    """The 16 raw bytes of a hex trace id; a malformed id hashes as its UTF-8 text."""
    try:
        return bytes.fromhex(trace_id)
    except ValueError:
        return trace_id.encode()


class ProbabilisticPolicy:
    """KEEP a ``rate`` share (0..1) of traces, chosen by trace-id hash."""

    def __init__(self, rate: float, salt: str = DEFAULT_SALT, name: str = "probabilistic") -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.name = name
        self.rate = rate
        self._salt = salt.encode()
        self._threshold = int(rate * _MASK64)

    def evaluate(self, trace: TraceData) -> Decision:
        """KEEP when the salted hash of the trace id is at or below the rate's threshold."""
        if self.rate == 0.0:
            return Decision.DROP
        h = trace_hash(trace.trace_id, self._salt)
        return Decision.KEEP if h <= self._threshold else Decision.DROP
