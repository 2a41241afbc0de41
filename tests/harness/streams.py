"""Data in and out of a test's topics: :func:`run_generate` and :func:`consume`.

:func:`run_generate` runs ``spanstream generate`` as a process, as a user runs
it; :func:`consume` reads a topic back from the start with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.kafka_client import KafkaSecurity, librdkafka_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_generate(
    bootstrap: str,
    topic: str,
    args: Sequence[str],
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``spanstream generate`` to ``topic`` as a user runs it (``env`` adds settings);
    raises if it fails."""
    cmd = [sys.executable, "-m", "pipeline.cli", "generate", "--bootstrap", bootstrap]
    cmd += ["--topic", topic, *args]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise AssertionError(f"generate failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout: float = 60.0,
    security: KafkaSecurity | None = None,
) -> list[Any]:
    """Messages of ``topic`` from the start until ``until(messages)`` holds (or ``timeout``).

    Returns confluent-kafka ``Message`` objects; fails with what was read so far.
    """
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **librdkafka_config(bootstrap, security or KafkaSecurity()),
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(messages)} messages after {timeout:.0f}s")
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    messages.append(msg)
    finally:
        consumer.close()
    return messages
