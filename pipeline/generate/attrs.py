"""Span and resource attributes following the OpenTelemetry semantic conventions.

Each builder returns about ten attributes for one side of one call; values
are ``str``, ``int`` or ``bool`` as the OTLP ``AnyValue`` they become.

>>> a = server_http("GET", "/api/cart", "/api/cart", 500, "frontend-1", 8080, "10.0.0.7")
>>> a["http.response.status_code"], a["http.route"], len(a)
(500, '/api/cart', 10)
"""

from __future__ import annotations

from pipeline.generate.topology import Op, Service, node_of

AttrValue = str | int | bool | float
Attrs = dict[str, AttrValue]

_USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) Safari/604.1",
    "okhttp/4.12.0",
)


def resource(service: Service, pod: str, environment: str) -> Attrs:
    """Resource attributes of one service instance (a pod on a node, running one version)."""
    return {
        "service.name": service.name,
        "service.version": service.version_of(pod),
        "service.namespace": "shop",
        "service.instance.id": f"{pod}-{service.port}",
        "k8s.pod.name": pod,
        "host.name": node_of(pod),
        "deployment.environment": environment,
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": service.language,
        "telemetry.sdk.version": "1.27.0",
    }


def server_http(
    method: str, route: str, path: str, status: int, host: str, port: int, peer: str
) -> Attrs:
    """Attributes of an HTTP server span."""
    return {
        "http.request.method": method,
        "http.route": route,
        "url.path": path,
        "url.scheme": "http",
        "http.response.status_code": status,
        "server.address": host,
        "server.port": port,
        "client.address": peer,
        "network.protocol.version": "1.1",
        "user_agent.original": _USER_AGENTS[len(path) % len(_USER_AGENTS)],
    }


def client_http(method: str, path: str, status: int, peer: str, port: int) -> Attrs:
    """Attributes of an HTTP client span."""
    return {
        "http.request.method": method,
        "url.full": f"http://{peer}:{port}{path}",
        "url.path": path,
        "http.response.status_code": status,
        "server.address": peer,
        "server.port": port,
        "net.peer.name": peer,
        "network.protocol.version": "1.1",
        "http.request.resend_count": 0,
        "thread.name": "http-client-1",
    }


def rpc(op: Op, grpc_status: int, peer: str, port: int, server: bool) -> Attrs:
    """Attributes of a gRPC span, server or client side."""
    attrs: Attrs = {
        "rpc.system": "grpc",
        "rpc.service": op.route,
        "rpc.method": op.method,
        "rpc.grpc.status_code": grpc_status,
        "server.address": peer,
        "server.port": port,
        "network.transport": "tcp",
        "network.type": "ipv4",
        "thread.name": "grpc-default-executor-0",
    }
    attrs["client.address" if server else "net.peer.name"] = peer
    return attrs


def database(op: Op, statement: str) -> Attrs:
    """Attributes of a PostgreSQL or Redis client span."""
    is_redis = op.protocol == "redis"
    peer = "redis" if is_redis else "postgres"
    return {
        "db.system": "redis" if is_redis else "postgresql",
        "db.namespace": "0" if is_redis else "shop",
        "db.statement": statement,
        "db.operation": op.method,
        "db.sql.table": op.table,
        "db.user": "" if is_redis else f"{op.service}_rw",
        "server.address": peer,
        "server.port": 6379 if is_redis else 5432,
        "net.peer.name": peer,
        "network.peer.address": "10.0.3.12" if is_redis else "10.0.3.20",
    }


def messaging(op: Op, key: str, partition: int, offset: int) -> Attrs:
    """Attributes of a Kafka producer or consumer span."""
    consumer = op.kind == "consumer"
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": op.route,
        "messaging.operation": "process" if consumer else "publish",
        "messaging.kafka.message.key": key,
        "messaging.kafka.destination.partition": partition,
        "messaging.kafka.message.offset": offset,
        "messaging.kafka.consumer.group": "shipping" if consumer else "",
        "messaging.message.id": f"{partition}-{offset}",
        "server.address": "kafka",
        "server.port": 9092,
    }


def internal(op: Op, card_brand: str) -> Attrs:
    """Attributes of an internal (in-process) span."""
    return {
        "code.function": op.method,
        "code.namespace": f"{op.service}.handlers",
        "code.filepath": f"src/{op.service}/handlers.py",
        "code.lineno": 42,
        "thread.name": "main",
        "thread.id": 1,
        "app.card.brand": card_brand,
        "app.card.valid": True,
        "app.payment.currency": "USD",
        "app.retry": False,
    }
