"""Alert delivery: ``spanstream alerts forward`` posts the alert topic to receivers.

Pure parts, each table-tested without a broker or a server:

* :mod:`~pipeline.delivery.records`: a Kafka record -> an alert, or the reason it is not one;
* :mod:`~pipeline.delivery.mapping`: an alert -> an Alertmanager v2 postable alert;
* :mod:`~pipeline.delivery.backoff`: which HTTP outcomes are retried, and how long to wait;
* :mod:`~pipeline.delivery.ledger`: the highest version seen per ``alert_id`` and the
  alerts firing now (re-posted so Alertmanager keeps them).

Shells: :mod:`~pipeline.delivery.receivers` (HTTP) and :mod:`~pipeline.delivery.forward`
(the Kafka consumer loop: at-least-once, offsets committed only once every receiver
accepted a record or it reached the dead-letter topic).
"""
