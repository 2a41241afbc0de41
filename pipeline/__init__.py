"""spanstream: OpenTelemetry traces from Kafka to tail-sampled spans, RED windows and anomaly alerts."""

__version__ = "0.1.0.dev0"
