"""OTLP trace decoding: Kafka record bytes (otlp_proto / otlp_json) -> enriched spans."""

from pipeline.otlp.decode import PROTOBUF_BACKEND, REASONS, Decoded, decode_message

__all__ = ["PROTOBUF_BACKEND", "REASONS", "Decoded", "decode_message"]
