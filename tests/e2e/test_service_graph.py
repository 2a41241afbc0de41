"""End to end: generated traces -> Kafka -> workers -> the service graph in chdb and /metrics.

The generator's topology (pipeline/generate/topology.py) has RPC chains, a Kafka
producer/consumer pair and database and cache calls; every trace has one root server
span on ``frontend``. Two workers in one group must store the same edges and self
time as one worker reading the same stream in another group, and export them under
the Collector servicegraph connector's metric names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.generate.manifest import Manifest
from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics
from tests.e2e.test_worker import PROCESS_TIMEOUT, Stack, base_env, owned, wait_processed

pytestmark = pytest.mark.e2e

#: Edges the topology must show (client, server, connection_type), a subset of all.
EXPECTED = {
    ("user", "frontend", "virtual_node"),
    ("frontend", "checkout", ""),
    ("frontend", "catalog", ""),
    ("checkout", "payment", ""),
    ("checkout", "shipping", "messaging_system"),
    ("catalog", "postgresql", "database"),
    ("cart", "redis", "database"),
}
LABELS = ("client", "server", "connection_type")


def edges(workers: list[LocalWorker]) -> Counter[tuple[str, ...]]:
    """(client, server, type, window ms, "calls"/"failed"/"client"/"server") -> sums."""
    out: Counter[tuple[str, ...]] = Counter()
    sql = (
        "SELECT Client, Server, ConnectionType, toUnixTimestamp64Milli(WindowStart), "
        "sum(Calls), sum(Failed), sum(ClientCount), sum(ServerCount) "
        "FROM spanstream_service_graph GROUP BY 1, 2, 3, 4"
    )
    for w in workers:
        for client, server, kind, start, calls, failed, n_client, n_server in w.query(sql):
            key = (client, server, kind, str(start))
            out[(*key, "calls")] += int(calls)
            out[(*key, "failed")] += int(failed)
            out[(*key, "client")] += int(n_client)
            out[(*key, "server")] += int(n_server)
    return +out


def self_time_spans(workers: list[LocalWorker]) -> int:
    return sum(
        int(w.query("SELECT sum(Spans) FROM spanstream_self_time")[0][0] or 0) for w in workers
    )


def exported(workers: list[LocalWorker]) -> Counter[tuple[str, ...]]:
    """traces_service_graph_request_total by (client, server, type), summed over workers."""
    out: Counter[tuple[str, ...]] = Counter()
    for w in workers:
        for labels, value in w.metric_samples("traces_service_graph_request_total").items():
            parsed = dict(
                part.split("=", 1) for part in labels.strip("{}").split(",") if "=" in part
            )
            out[tuple(parsed[k].strip('"') for k in LABELS)] += int(value)
    return +out


def calls_by_edge(table: Counter[tuple[str, ...]]) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for (client, server, kind, _, what), n in table.items():
        if what == "calls":
            out[(client, server, kind)] += n
    return out


@contextmanager
def pair_and_single(bootstrap: str, tmp: Path) -> Iterator[tuple[Stack, list[LocalWorker]]]:
    """Workers a and b in one group and ``one`` in another, on the same input topic, once
    a and b own three input partitions each."""
    env = {"SPANSTREAM_GRAPH_FLUSH_SECONDS": "1"}
    pair = Stack(bootstrap, tmp / "pair", base_env(**env))
    single = Stack(bootstrap, tmp / "single", base_env(**env))
    single.env["SPANSTREAM_INPUT_TOPIC"] = pair.input_topic  # the same stream, another group
    prepare_topics(bootstrap, pair.env)
    prepare_topics(bootstrap, single.env)
    a, b, one = pair.worker("a"), pair.worker("b"), single.worker("one")
    try:
        for w in (a, b, one):
            w.start()

        def split() -> bool:
            (ia, _), (ib, _) = owned(a), owned(b)
            return ia | ib == set(range(6)) and not ia & ib and bool(ia and ib)

        a.wait_for(split, PROCESS_TIMEOUT, "both workers own input partitions")
        yield pair, [a, b, one]
    finally:
        for w in (a, b, one):
            w.stop()
        delete_topics(bootstrap, pair.env)
        delete_topics(bootstrap, single.env)


def generate_and_wait(stack: Stack, workers: list[LocalWorker], *args: str) -> Manifest:
    a, b, one = workers
    manifest = stack.generate(
        "--rate", "10", "--duration", "120", "--spans-per-trace", "8", "--seed", "7", *args
    )  # fmt: skip
    spans = manifest.summary["spans"]
    wait_processed([a, b], spans, PROCESS_TIMEOUT)
    wait_processed([one], spans, PROCESS_TIMEOUT)
    for group in ([a, b], [one]):

        def written(g: list[LocalWorker] = group) -> bool:
            late = sum(w.metric("spanstream_graph_late_spans_total") for w in g)
            return self_time_spans(g) + late == spans

        group[0].wait_for(written, PROCESS_TIMEOUT, "self time written")
    return manifest


def test_two_workers_derive_the_edges_one_worker_derives(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with pair_and_single(kafka_bootstrap, tmp_path) as (stack, workers):
        a, b, one = workers
        manifest = generate_and_wait(stack, workers)
        pair_edges, one_edges = edges([a, b]), edges([one])
        assert pair_edges == one_edges
        by_edge = calls_by_edge(one_edges)
        assert set(by_edge) >= EXPECTED, sorted(by_edge)
        assert by_edge[("user", "frontend", "virtual_node")] == len(manifest.traces)
        assert all(w.metric("spanstream_graph_unpaired_spans_total") == 0 for w in workers)
        assert exported([a, b]) == exported([one]) == by_edge
        spans = manifest.summary["spans"]
        print(f"{spans} spans, {len(manifest.traces)} traces; calls by edge: {dict(by_edge)}")


def test_traces_split_across_workers_are_counted_unpaired(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Unkeyed batches with split traces: parts on two workers cannot be paired by either."""
    with pair_and_single(kafka_bootstrap, tmp_path) as (stack, workers):
        a, b, one = workers
        manifest = generate_and_wait(stack, workers, "--batch-traces", "4", "--split-traces", "0.3")
        one_calls, pair_calls = calls_by_edge(edges([one])), calls_by_edge(edges([a, b]))
        unpaired_one = one.metric("spanstream_graph_unpaired_spans_total")
        unpaired_pair = a.metric("spanstream_graph_unpaired_spans_total") + b.metric(
            "spanstream_graph_unpaired_spans_total"
        )
        traces = len(manifest.traces)
        direct = sum(n for (_, _, kind), n in one_calls.items() if kind in ("", "messaging_system"))
        lost = direct - sum(
            n for (_, _, kind), n in pair_calls.items() if kind in ("", "messaging_system")
        )
        late = sum(w.metric("spanstream_graph_late_spans_total") for w in workers)
        assert late == 0, "a split trace's part arrived after its decision"
        assert unpaired_one == 0 and one_calls[("user", "frontend", "virtual_node")] == traces
        assert unpaired_pair > 0 and lost == unpaired_pair
        print(
            f"{traces} traces, 30% split in 2 unkeyed messages, 2 workers: {lost:.0f} of "
            f"{direct} service-to-service calls unpaired ({lost / direct:.1%}); 1 worker: 0"
        )
