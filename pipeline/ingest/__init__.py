"""The ingest stage: Kafka records of the input topic -> decoded spans -> sampling and partials.

:mod:`pipeline.ingest.core` (decode, sample, aggregate) and
:mod:`pipeline.ingest.progress` (the commit marks) are pure;
:mod:`pipeline.ingest.commit` is the commit protocol, and
:mod:`pipeline.ingest.loop` the Kafka/ClickHouse shell that runs its steps.
"""
