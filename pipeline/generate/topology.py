"""A small shop-like service topology: which service serves which operation and whom it calls.

Seven services (``frontend``, ``cart``, ``checkout``, ``payment``,
``inventory``, ``catalog``, ``shipping``) backed by PostgreSQL, Redis and a
Kafka ``orders`` topic. Four HTTP entry routes on ``frontend`` fan out over
gRPC, HTTP, database, cache and messaging calls. The data here is static;
:mod:`pipeline.generate.traces` turns it into spans.

>>> sorted(SERVICES)
['cart', 'catalog', 'checkout', 'frontend', 'inventory', 'payment', 'shipping']
>>> OPS["payment:Charge"].name
'oteldemo.PaymentService/Charge'
>>> sum(weight for _, weight in ENTRY_ROUTES)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

#: Span kinds as OTLP ``Span.SpanKind`` numbers.
KIND = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}

#: Instrumentation scope (name, version) by protocol of the span's own side.
SCOPES = {
    "http": ("opentelemetry.instrumentation.flask", "0.48b0"),
    "http_client": ("opentelemetry.instrumentation.requests", "0.48b0"),
    "grpc": ("opentelemetry.instrumentation.grpc", "0.48b0"),
    "db": ("opentelemetry.instrumentation.psycopg2", "0.48b0"),
    "redis": ("opentelemetry.instrumentation.redis", "0.48b0"),
    "kafka": ("opentelemetry.instrumentation.confluent_kafka", "0.48b0"),
}


@dataclass(frozen=True, slots=True)
class Service:
    """A deployed service: its version, SDK language, pods (``hosts``) and listening port.

    ``canary`` is the version the second half of its pods run (a rollout in
    progress), so a fault of one version is not a fault of one pod.
    """

    name: str
    version: str
    language: str
    hosts: tuple[str, ...]
    port: int
    canary: str = ""

    def version_of(self, pod: str) -> str:
        """The version ``pod`` runs: the canary on the second half of the pods."""
        if self.canary and pod in self.hosts[len(self.hosts) // 2 :]:
            return self.canary
        return self.version


#: Kubernetes nodes the pods are spread over (``host.name``).
NODES = ("node-a", "node-b", "node-c")


def node_of(pod: str) -> str:
    """The node (``host.name``) a pod runs on: deterministic from its name.

    >>> node_of("checkout-66a1-1"), node_of("checkout-66a1-2")
    ('node-c', 'node-a')
    """
    return NODES[sum(pod.encode()) % len(NODES)]


def _pods(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}-{i}" for i in range(1, 5))


@dataclass(frozen=True, slots=True)
class Call:
    """An operation calling another: over ``grpc``/``http`` (client + server span) or ``local``."""

    target: str
    protocol: str
    prob: float = 1.0
    lo: int = 1
    hi: int = 1


@dataclass(frozen=True, slots=True)
class Op:
    """One operation: the span a service emits for it, its own work time and its calls.

    ``name`` may hold ``{user_id}``-style placeholders (filled per call for
    HTTP paths); ``route`` is the template. ``raw_name`` spans are named by
    the concrete path (an old instrumentation), which the pipeline has to
    normalize. ``repeatable`` leaf calls are repeated to reach the trace size.
    """

    key: str
    service: str
    kind: str
    protocol: str
    name: str
    self_ms: float
    calls: tuple[Call, ...] = ()
    method: str = ""
    route: str = ""
    statement: str = ""
    table: str = ""
    raw_name: bool = False
    repeatable: bool = False
    error_weight: float = 1.0


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("frontend", "2.4.1", "nodejs", _pods("frontend-7f9c"), 8080, "2.5.0"),
        Service("cart", "1.9.0", "dotnet", _pods("cart-5d4b"), 7070, "1.10.0"),
        Service("checkout", "3.1.2", "go", _pods("checkout-66a1"), 5050, "3.2.0"),
        Service("payment", "1.2.7", "java", _pods("payment-84c2"), 50051, "1.3.0"),
        Service("inventory", "0.9.3", "python", _pods("inventory-19e0"), 8000, "0.10.0"),
        Service("catalog", "4.0.0", "python", _pods("catalog-3b77"), 8000, "4.1.0"),
        Service("shipping", "1.0.5", "rust", _pods("shipping-0c5e"), 50052, "1.1.0"),
    )
}


def _http(key: str, service: str, method: str, route: str, ms: float, *calls: Call) -> Op:
    return Op(key, service, "server", "http", f"{method} {route}", ms, calls, method, route)


def _grpc(key: str, service: str, method: str, ms: float, *calls: Call) -> Op:
    name = f"oteldemo.{service.capitalize()}Service/{method}"
    return Op(key, service, "server", "grpc", name, ms, calls, method, name.split("/")[0])


def _sql(key: str, service: str, statement: str, ms: float) -> Op:
    words = statement.split()
    # The table follows FROM/INTO, or the verb itself (UPDATE t ...).
    marker = next((i for i, w in enumerate(words) if w in ("FROM", "INTO")), 0)
    operation, table = words[0], words[marker + 1]
    return Op(
        key, service, "client", "db", f"{operation} {table}", ms,
        method=operation, statement=statement, table=table, repeatable=True, error_weight=0.3,
    )  # fmt: skip


def _redis(key: str, service: str, command: str, ms: float) -> Op:
    return Op(
        key, service, "client", "redis", command, ms,
        method=command, statement=f"{command} cart:{{user_id}}", repeatable=True,
        error_weight=0.2,
    )  # fmt: skip


_OP_LIST = (
    _http(
        "frontend:orders",
        "frontend",
        "GET",
        "/users/{user_id}/orders/{order_id}",
        1.5,
        Call("checkout:GetOrder", "grpc"),
        Call("catalog:product", "http", lo=1, hi=3),
    ),
    _http(
        "frontend:checkout",
        "frontend",
        "POST",
        "/api/checkout",
        2.0,
        Call("checkout:PlaceOrder", "grpc"),
    ),
    _http(
        "frontend:cart",
        "frontend",
        "GET",
        "/api/cart",
        1.0,
        Call("cart:GetCart", "grpc"),
        Call("catalog:product", "http", lo=1, hi=2),
    ),
    _http(
        "frontend:product",
        "frontend",
        "GET",
        "/api/products/{product_id}",
        0.8,
        Call("catalog:product", "http"),
        Call("inventory:item", "http", prob=0.7),
    ),
    _grpc("cart:GetCart", "cart", "GetCart", 0.6, Call("cart:hgetall", "local")),
    _grpc("cart:EmptyCart", "cart", "EmptyCart", 0.4, Call("cart:del", "local")),
    _redis("cart:hgetall", "cart", "HGETALL", 0.3),
    _redis("cart:del", "cart", "DEL", 0.2),
    _grpc(
        "checkout:PlaceOrder",
        "checkout",
        "PlaceOrder",
        3.0,
        Call("cart:GetCart", "grpc"),
        Call("inventory:reserve", "http"),
        Call("payment:Charge", "grpc"),
        Call("cart:EmptyCart", "grpc", prob=0.9),
        Call("checkout:publish", "local"),
    ),
    _grpc("checkout:GetOrder", "checkout", "GetOrder", 1.0, Call("checkout:orders", "local", hi=2)),
    _sql("checkout:orders", "checkout", "SELECT id, status, total FROM orders WHERE id = $1", 1.2),
    Op(
        "checkout:publish",
        "checkout",
        "producer",
        "kafka",
        "orders publish",
        0.5,
        (Call("shipping:process", "local"),),
        method="publish",
        route="orders",
    ),
    Op(
        "shipping:process",
        "shipping",
        "consumer",
        "kafka",
        "orders process",
        1.0,
        (Call("shipping:shipments", "local"),),
        method="process",
        route="orders",
    ),
    _sql(
        "shipping:shipments",
        "shipping",
        "INSERT INTO shipments (order_id, address) VALUES ($1, $2)",
        1.5,
    ),
    _grpc(
        "payment:Charge",
        "payment",
        "Charge",
        8.0,
        Call("payment:validate", "local"),
        Call("payment:payments", "local"),
    ),
    Op(
        "payment:validate",
        "payment",
        "internal",
        "internal",
        "validate card",
        2.0,
        method="validate",
    ),
    _sql(
        "payment:payments", "payment", "INSERT INTO payments (order_id, amount) VALUES (?, ?)", 2.5
    ),
    _http(
        "inventory:reserve",
        "inventory",
        "POST",
        "/inventory/reserve",
        1.0,
        Call("inventory:stock", "local", lo=1, hi=3),
    ),
    _http(
        "inventory:item",
        "inventory",
        "GET",
        "/inventory/items/{item_id}",
        0.5,
        Call("inventory:stock_read", "local"),
    ),
    _sql(
        "inventory:stock",
        "inventory",
        "UPDATE stock SET reserved = reserved + %s WHERE sku = %s",
        1.0,
    ),
    _sql(
        "inventory:stock_read", "inventory", "SELECT sku, available FROM stock WHERE sku = %s", 0.6
    ),
    Op(
        "catalog:product",
        "catalog",
        "server",
        "http",
        "GET /products/{product_id}",
        0.7,
        (Call("catalog:products", "local"),),
        "GET",
        "/products/{product_id}",
        raw_name=True,
    ),
    _sql("catalog:products", "catalog", "SELECT id, name, price FROM products WHERE id = %s", 0.8),
)

#: Every operation by key (``service:name``).
OPS: dict[str, Op] = {op.key: op for op in _OP_LIST}

#: Entry routes on ``frontend`` and their share of traffic.
ENTRY_ROUTES: tuple[tuple[str, float], ...] = (
    ("frontend:orders", 0.3),
    ("frontend:checkout", 0.2),
    ("frontend:cart", 0.25),
    ("frontend:product", 0.25),
)
