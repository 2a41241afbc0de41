"""A :class:`~pipeline.local.kafka.LocalKafka` with a second, SASL_SSL listener.

With TLS material from :func:`tests.harness.tls.make_tls_files` and ``users``
(name -> password), the broker also listens at :attr:`SaslSslKafka.sasl_ssl_bootstrap`:
SCRAM-SHA-256/512 and PLAIN for those users, client certificates required,
as ``infra/kafka/kafka.sh --sasl-ssl-port --tls-dir`` configures it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pipeline.errors import ServiceUnavailable
from pipeline.local.kafka import LocalKafka
from pipeline.local.process import free_port
from tests.harness.tls import TlsFiles


class SaslSslKafka(LocalKafka):
    """A broker with PLAINTEXT at :attr:`bootstrap` and SASL_SSL at :attr:`sasl_ssl_bootstrap`."""

    def __init__(
        self, data_dir: str | os.PathLike[str], *, tls: TlsFiles, users: Mapping[str, str]
    ) -> None:
        super().__init__(data_dir)
        self.tls = tls
        self.users = dict(users)
        self.sasl_ssl_port: int | None = None

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the SASL_SSL listener; valid once started."""
        if self.sasl_ssl_port is None:
            raise ServiceUnavailable("SaslSslKafka has not been started yet")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    def start(self, ready_timeout: float | None = None) -> Self:
        if self.sasl_ssl_port is None:
            self.sasl_ssl_port = free_port()
            self._write_users(self.tls.directory / "users")
        return super().start(ready_timeout)

    def script_options(self) -> list[str]:
        tls = ["--sasl-ssl-port", str(self.sasl_ssl_port), "--tls-dir", str(self.tls.directory)]
        return [*super().script_options(), *tls]

    def _write_users(self, path: Path) -> None:
        # kafka.sh reads the users from this file (SCRAM ones go to the storage format once).
        bad = [name for name in self.users if not name.isidentifier()]
        if bad:
            raise ValueError(f"user names must be identifiers: {bad}")
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={pw}\n" for name, pw in self.users.items()))
