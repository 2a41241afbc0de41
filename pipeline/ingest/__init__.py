"""The ingest stage: Kafka records of the input topic -> decoded spans -> sampling and partials.

:mod:`pipeline.ingest.progress` and :mod:`pipeline.ingest.core` are pure;
:mod:`pipeline.ingest.loop` is the Kafka/ClickHouse shell around them.
"""
