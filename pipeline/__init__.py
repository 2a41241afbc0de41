"""spanstream: OpenTelemetry traces from Kafka -> tail-sampled spans, RED windows, alerts."""

__version__ = "0.1.0.dev0"
