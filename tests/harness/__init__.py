"""Test-only services and tools: ClickHouse server, Collector, outage rig, accounting, TLS."""
