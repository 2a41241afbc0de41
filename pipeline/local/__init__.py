"""Throwaway local services for ``spanstream bench`` and ``spanstream evaluate --nezha``.

* :mod:`pipeline.local.process`: :class:`~pipeline.local.process.LocalProcess`,
  the one way a local service runs (start, readiness wait, log capture, SIGTERM
  then SIGKILL);
* :mod:`pipeline.local.kafka`: a single-node Kafka broker (``infra/kafka/kafka.sh``);
* :mod:`pipeline.local.worker`: a ``spanstream worker`` process and its topics.

The test suite builds on the same classes; what only tests use (ClickHouse
server, Collector, outage rig, accounting, TLS material) lives in ``tests/harness``.
"""
