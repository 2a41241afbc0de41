"""One process: the in-process ingest core's spans per CPU-second, best of 3 passes.

Usage: ``python infra/graph-cost/core_one.py on|off`` (service graph derived or not),
from the root of the tree to measure (``PYTHONPATH`` set to it). See ab.sh.
"""

from __future__ import annotations

import sys
import time

from pipeline.bench.inprocess import run_core
from pipeline.enrich import Enricher
from pipeline.generate.messages import Framing, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.otlp import decode_message

graph = sys.argv[1] == "on"
spec = StreamSpec(seed=3, start_ns=1_700_000_000 * 10**9, rate=200.0, count=2000)
values = [m.value for m in to_messages(generate_traces(spec), Framing("otlp_proto"))]
enricher = Enricher()
spans = sum(
    len(decode_message(v, None, max_bytes=1 << 24, enricher=enricher).spans) for v in values
)
run_core(values, graph=graph)  # warm-up
best = float("inf")
for _ in range(3):
    start = time.process_time()
    run_core(values, graph=graph)
    best = min(best, time.process_time() - start)
print(round(spans / best))
