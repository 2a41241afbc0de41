"""Pure trace synthesis: one call tree over the topology, timed and with errors.

A trace is built in two passes: *plan* picks the entry route, which calls
happen and how often (repeating database/cache calls until the trace reaches
its drawn size); *run* walks the plan, placing children sequentially inside
their parents, drawing each span's own work time from a lognormal and its
error from the (possibly anomalous) error rate. Each service of a trace runs
on one pod (drawn on its first span), whose version and node the resource
attributes name and the faults may target. Faults propagate as in a real RPC
chain: a slow callee makes its caller slower by the added time (children run
inside their parents); a failed remote call is retried once with probability
:data:`RETRY`, after a back-off, and a failure left standing fails the caller
with probability :data:`PROPAGATE_ERROR`. All randomness comes from the
``random.Random`` passed in.

>>> import random
>>> f = TraceFactory(random.Random(7), mean_spans=20)
>>> t = f.build(1_700_000_000 * 10**9)
>>> root = [s for s in t.spans if not s.parent_span_id]
>>> len(root), root[0].service, len(t.trace_id_hex)
(1, 'frontend', 32)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from pipeline.generate import attrs
from pipeline.generate.anomalies import AnomalySet
from pipeline.generate.topology import ENTRY_ROUTES, KIND, OPS, SCOPES, SERVICES, Op

#: A caller's span fails with this probability when a callee failed.
PROPAGATE_ERROR = 0.9
#: A caller retries a failed remote call once with this probability.
RETRY = 0.3
#: Back-off before the retry, in milliseconds (median).
RETRY_BACKOFF_MS = 5.0
_EXCEPTIONS = {
    "http": ("werkzeug.exceptions.InternalServerError", "500 Internal Server Error"),
    "grpc": ("io.grpc.StatusRuntimeException", "UNAVAILABLE: upstream connect error"),
    "db": ("psycopg2.OperationalError", "could not serialize access"),
    "redis": ("redis.exceptions.TimeoutError", "Timeout reading from socket"),
    "kafka": ("confluent_kafka.KafkaException", "Local: Message timed out"),
    "internal": ("ValueError", "card declined"),
}


@dataclass(frozen=True, slots=True)
class GenEvent:
    """A span event (exception events on errors, gRPC message events)."""

    time_ns: int
    name: str
    attributes: attrs.Attrs


@dataclass(frozen=True, slots=True)
class GenLink:
    """A link from a span to another span (possibly in another trace)."""

    trace_id: bytes
    span_id: bytes


@dataclass(slots=True)
class GenSpan:
    """One generated span with OTLP-typed fields (ids as bytes, kind/status as numbers)."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    kind: int
    service: str
    scope: tuple[str, str]
    start_ns: int
    end_ns: int
    attributes: attrs.Attrs
    status_code: int = 0
    status_message: str = ""
    events: list[GenEvent] = field(default_factory=list)
    links: list[GenLink] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        """Status ERROR (OTLP code 2)."""
        return self.status_code == 2


@dataclass(slots=True)
class Trace:
    """One trace: its spans and the resource attributes of each service taking part."""

    trace_id: bytes
    start_ns: int
    spans: list[GenSpan]
    resources: dict[str, attrs.Attrs]

    @property
    def trace_id_hex(self) -> str:
        """32-char lowercase hex trace id (the Kafka key)."""
        return self.trace_id.hex()


@dataclass(slots=True)
class _Plan:
    op: Op
    via: str
    children: list[_Plan] = field(default_factory=list)


class TraceFactory:
    """Builds traces from a seeded ``random.Random``; see the module docstring."""

    def __init__(
        self,
        rng: random.Random,
        *,
        mean_spans: int = 20,
        base_error_rate: float = 0.01,
        environment: str = "production",
        anomalies: AnomalySet | None = None,
    ) -> None:
        self.rng = rng
        self.mean_spans = mean_spans
        self.base_error_rate = base_error_rate
        self.environment = environment
        self.anomalies = anomalies or AnomalySet([], 0)
        self._routes = [OPS[key] for key, _ in ENTRY_ROUTES]
        self._weights = [w for _, w in ENTRY_ROUTES]

    def build(self, start_ns: int) -> Trace:
        """One trace whose root span starts at ``start_ns``."""
        rng = self.rng
        root = self._plan(rng.choices(self._routes, self._weights)[0], "root")
        self._fill(root, max(1, round(rng.uniform(0.5, 1.5) * self.mean_spans)))
        run = _Run(self, rng.getrandbits(128).to_bytes(16, "big"), start_ns)
        run.own(root, b"", start_ns)
        resources = {
            name: attrs.resource(SERVICES[name], pod, self.environment)
            for name, pod in run.pods.items()
        }
        return Trace(run.trace_id, start_ns, run.spans, resources)

    def _plan(self, op: Op, via: str) -> _Plan:
        node = _Plan(op, via)
        for call in op.calls:
            if self.rng.random() < call.prob:
                for _ in range(self.rng.randint(call.lo, call.hi)):
                    node.children.append(self._plan(OPS[call.target], call.protocol))
        return node

    def _fill(self, root: _Plan, target: int) -> None:
        """Repeat repeatable leaf calls until the plan has ``target`` spans."""
        slots: list[_Plan] = []
        count = _collect(root, slots)
        while count < target and slots:
            parent = self.rng.choice(slots)
            leaves = [c for c in parent.children if c.op.repeatable]
            parent.children.append(_Plan(self.rng.choice(leaves).op, "local"))
            count += 1


def _collect(node: _Plan, slots: list[_Plan]) -> int:
    """Span count of the plan; appends nodes that have repeatable leaf children to ``slots``."""
    count = 2 if node.via in ("grpc", "http") else 1
    if any(c.op.repeatable and not c.children for c in node.children):
        slots.append(node)
    for child in node.children:
        count += _collect(child, slots)
    return count


class _Run:
    """Walks one plan, creating timed spans (children strictly inside parents)."""

    def __init__(self, factory: TraceFactory, trace_id: bytes, t0: int) -> None:
        self.f = factory
        self.rng = factory.rng
        self.trace_id = trace_id
        self.t0 = t0
        self.spans: list[GenSpan] = []
        self.peer = f"10.0.{self.rng.randint(0, 3)}.{self.rng.randint(2, 250)}"
        self.ids = {k: str(self.rng.randint(1, 99_999)) for k in ("user_id", "order_id")}
        self.kafka_pos = (self.rng.randint(0, 5), self.rng.randint(1_000, 9_000_000))
        self.pods: dict[str, str] = {}

    def pod(self, service: str) -> str:
        """The pod serving ``service`` in this trace (drawn on first use)."""
        pod = self.pods.get(service)
        if pod is None:
            pod = self.pods[service] = self.rng.choice(SERVICES[service].hosts)
        return pod

    def _id(self) -> bytes:
        return (self.rng.getrandbits(63) | 1).to_bytes(8, "big")

    def _ns(self, median_ms: float, factor: float) -> int:
        return int(self.rng.lognormvariate(math.log(median_ms), 0.45) * factor * 1e6)

    def own(self, node: _Plan, parent_id: bytes, start: int, path: str = "") -> tuple[int, bool]:
        """Create the span of ``node`` and its subtree starting at ``start``: (end, error)."""
        op, rng, span_id, faults = node.op, self.rng, self._id(), self.f.anomalies
        pod = self.pod(op.service)
        self_ns = self._ns(op.self_ms, faults.latency_factor(op.service, op.name, self.t0, pod))
        pre = int(self_ns * rng.uniform(0.1, 0.4))
        cursor, child_error = start + pre, False
        for child in node.children:
            cursor += rng.randint(20_000, 200_000)
            if child.via in ("grpc", "http"):
                cursor, err = self.remote(child, span_id, cursor, op.service)
                if err and rng.random() < RETRY:
                    cursor += self._ns(RETRY_BACKOFF_MS, 1.0)
                    cursor, err = self.remote(child, span_id, cursor, op.service)
            else:
                cursor, err = self.own(child, span_id, cursor)
            child_error |= err
        end = cursor + self_ns - pre
        rate = faults.error_rate(op.service, op.name, self.t0, self.f.base_error_rate, pod)
        error = rng.random() < rate * op.error_weight or (
            child_error and rng.random() < PROPAGATE_ERROR
        )
        path = path or self._path(op)
        name = f"{op.method} {path}" if op.raw_name else op.name
        scope = SCOPES.get(op.protocol, (f"{op.service}.handlers", SERVICES[op.service].version))
        span = GenSpan(
            self.trace_id, span_id, parent_id, name, KIND[op.kind], op.service, scope,
            start, end, self._own_attrs(op, path, error),
        )  # fmt: skip
        self._decorate(span, op, parent_id, error)
        self.spans.append(span)
        return end, error

    def remote(self, node: _Plan, parent_id: bytes, start: int, caller: str) -> tuple[int, bool]:
        """A client span in ``caller`` wrapping the callee's server span."""
        op, client_id, path = node.op, self._id(), self._path(node.op)
        end, error = self.own(node, client_id, start + self._ns(0.25, 1.0), path)
        end += self._ns(0.25, 1.0)
        port = SERVICES[op.service].port
        if op.protocol == "grpc":
            name, scope = op.name, SCOPES["grpc"]
            span_attrs = attrs.rpc(op, 14 if error else 0, op.service, port, server=False)
        else:
            name, scope = f"{op.method} {path}", SCOPES["http_client"]
            span_attrs = attrs.client_http(op.method, path, 503 if error else 200, op.service, port)
        client = GenSpan(
            self.trace_id, client_id, parent_id, name, KIND["client"], caller, scope,
            start, end, span_attrs,
        )  # fmt: skip
        _mark_error(client, error, "grpc" if op.protocol == "grpc" else "http")
        self.spans.append(client)
        return end, error

    def _own_attrs(self, op: Op, path: str, error: bool) -> attrs.Attrs:
        port = SERVICES[op.service].port
        if op.protocol == "http":
            status = 500 if error else (201 if op.method == "POST" else 200)
            return attrs.server_http(op.method, op.route, path, status, op.service, port, self.peer)
        if op.protocol == "grpc":
            return attrs.rpc(op, 13 if error else 0, self.peer, port, server=True)
        if op.protocol in ("db", "redis"):
            return attrs.database(op, op.statement.format(**self.ids))
        if op.protocol == "kafka":
            return attrs.messaging(op, self.ids["order_id"], *self.kafka_pos)
        return attrs.internal(op, self.rng.choice(("visa", "mastercard", "amex")))

    def _decorate(self, span: GenSpan, op: Op, parent_id: bytes, error: bool) -> None:
        """Events and links: exceptions, occasional gRPC message events, consumer links."""
        _mark_error(span, error, op.protocol)
        if op.protocol == "grpc" and self.rng.random() < 0.2:
            for t, kind in ((span.start_ns, "RECEIVED"), (span.end_ns, "SENT")):
                span.events.append(GenEvent(t, "message", {"message.type": kind, "message.id": 1}))
        if op.kind == "consumer":
            span.links.append(GenLink(self.trace_id, parent_id))
        elif not parent_id and self.rng.random() < 0.02:
            other = self.rng.getrandbits(128).to_bytes(16, "big")
            span.links.append(GenLink(other, self._id()))

    def _path(self, op: Op) -> str:
        if op.protocol != "http":
            return ""
        product = str(self.rng.randint(1, 5000))
        return op.route.format(**self.ids, product_id=product, item_id=product)


def _mark_error(span: GenSpan, error: bool, protocol: str) -> None:
    """Status ERROR and an exception event at the span's end."""
    if not error:
        return
    exc_type, message = _EXCEPTIONS[protocol]
    span.status_code = 2
    span.status_message = message
    span.events.append(
        GenEvent(
            span.end_ns,
            "exception",
            {"exception.type": exc_type, "exception.message": message, "exception.escaped": False},
        )
    )
