"""docker-compose.yml stays valid for users even though no Docker engine runs here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_every_mounted_host_path_exists() -> None:
    missing = []
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            host = volume.split(":", 1)[0]
            if host.startswith(".") and not (ROOT / host).exists():
                missing.append(f"{name}: {host}")
    assert missing == []


def test_has_the_parts_users_expect() -> None:
    services = set(compose()["services"])
    assert {"kafka", "clickhouse", "otelcol", "worker", "prometheus", "grafana"} <= services


def test_worker_can_be_scaled() -> None:
    worker = compose()["services"]["worker"]
    # --scale fails on fixed host ports and container names.
    assert "ports" not in worker and "container_name" not in worker


def test_built_services_have_a_dockerfile() -> None:
    built = [s for s in compose()["services"].values() if "build" in s]
    assert built and (ROOT / "Dockerfile").is_file()


def test_the_image_builds_the_native_extension() -> None:
    """``pip install`` compiles pipeline/otlp/_heads.c: setup.py and a compiler must be there."""
    text = (ROOT / "Dockerfile").read_text()
    copied = " ".join(line for line in text.splitlines() if line.startswith("COPY"))
    assert "setup.py" in copied and "pipeline" in copied
    assert "gcc" in text


def _published_ports() -> list[tuple[str, str]]:
    return [
        (name, str(port))
        for name, service in compose()["services"].items()
        for port in service.get("ports", [])
    ]


def test_published_ports_bind_loopback_only() -> None:
    """Nothing listens on every interface: ClickHouse, Grafana and the Collector would be
    open to the whole network (Docker's port publishing bypasses host firewalls)."""
    ports = _published_ports()
    assert ports
    assert [(name, port) for name, port in ports if not port.startswith("127.0.0.1:")] == []


def test_no_password_is_written_in_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    # scheme://user:password@ (an empty password counts: it was "default:@").
    assert re.findall(r"://[^/@\s:]+:[^@\s]*@", text) == []
    assert "CLICKHOUSE_SKIP_USER_SETUP" not in text  # that is the passwordless default user


def test_clickhouse_and_its_clients_share_the_password_secret() -> None:
    data = compose()
    assert data["secrets"]["clickhouse_password"] == {"file": "./secrets/clickhouse_password"}
    for name in ("clickhouse", "setup", "worker", "grafana"):
        assert "clickhouse_password" in data["services"][name]["secrets"], name
    env = data["services"]["worker"]["environment"]
    assert env["SPANSTREAM_CLICKHOUSE_PASSWORD_FILE"] == "/run/secrets/clickhouse_password"
    assert "/run/secrets/clickhouse_password" in " ".join(
        data["services"]["clickhouse"]["entrypoint"]
    )
    datasource = (ROOT / "infra/grafana/provisioning/datasources/clickhouse.yaml").read_text()
    assert "$__file{/run/secrets/clickhouse_password}" in datasource


def test_secrets_are_never_committed() -> None:
    assert "secrets/" in (ROOT / ".gitignore").read_text().splitlines()


def test_prometheus_can_reach_the_workers_metrics_port() -> None:
    """The metrics port binds loopback by default; in compose Prometheus is another host."""
    from pipeline.settings import load_settings

    worker_env = compose()["services"]["worker"]["environment"]
    # The secret file exists only inside the container.
    env = {k: str(v) for k, v in worker_env.items() if not k.endswith("_FILE")}
    settings = load_settings(env)
    assert settings.metrics_bind == "0.0.0.0"
    assert settings.web_bind == "127.0.0.1"  # /query stays inside the container
