"""``spanstream generate``: synthetic multi-service OTLP traces with labelled anomalies.

Pure parts (topology, traces, anomalies, schedule, encode, messages,
manifest) build spans and Kafka records; ``produce`` and ``runner`` are the
I/O edge.
"""
