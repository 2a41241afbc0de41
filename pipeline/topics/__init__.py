"""Kafka topics as code: declarations in ``topics/topics.yaml``, a pure plan, and apply.

- :mod:`~pipeline.topics.declarations`: the YAML validated into frozen ``TopicDecl``;
- :mod:`~pipeline.topics.planning`: declarations against the broker's ``TopicState``,
  per topic ``create``, ``ok`` or ``drift`` (with expected vs actual);
- :mod:`~pipeline.topics.admin`: ``TopicAdmin``, the broker I/O (AdminClient, deadlines);
- :mod:`~pipeline.topics.reconcile`: ``apply`` (``spanstream topics apply``) and
  ``prepare_worker_topics`` (a worker's start).
"""
