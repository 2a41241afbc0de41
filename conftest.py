"""Root conftest: registers the shared service fixtures (real Kafka, real ClickHouse)."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.clickhouse"]
