"""RED metrics of every span before sampling, as the Collector's spanmetrics connector names them.

:mod:`pipeline.spanmetrics.counts` counts spans per (service, operation, kind, status)
with the connector's default duration buckets; :mod:`pipeline.spanmetrics.exposition`
turns the counts into the Prometheus families a worker serves.
"""
