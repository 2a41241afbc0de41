"""Throw-away TLS material for tests: a CA, a broker certificate and a client certificate.

Made with the ``cryptography`` package (a dev dependency) into one directory, in the
layout ``infra/kafka/kafka.sh start --tls-dir`` reads:

* ``ca.pem``: the CA certificate (the clients' and the broker's trust store);
* ``broker.pem``: the broker's unencrypted PKCS#8 key followed by its certificate,
  valid for ``127.0.0.1`` and ``localhost`` (hostname verification stays on);
* ``client.crt`` / ``client.key``: a client certificate for mutual TLS, its key
  encrypted with the passphrase in ``client.key.password``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

#: Validity of the test certificates; a test session is far shorter.
VALID_FOR = dt.timedelta(days=2)


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated files and the client key's passphrase."""

    directory: Path
    client_key_password: str

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def broker(self) -> Path:
        return self.directory / "broker.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @property
    def client_key_password_file(self) -> Path:
        return self.directory / "client.key.password"


def make_tls_files(
    directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> TlsFiles:
    """Write a fresh CA, a broker certificate for ``hosts`` and a client certificate."""
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _certificate("spanstream test CA", None, hosts=(), is_ca=True)
    broker_key, broker_cert = _certificate("kafka broker", (ca_key, ca_cert), hosts, is_ca=False)
    client_key, client_cert = _certificate("spanstream worker", (ca_key, ca_cert), (), is_ca=False)
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    files = TlsFiles(directory, client_key_password=secrets.token_urlsafe(12))
    files.ca.write_bytes(ca_cert.public_bytes(pem))
    broker_key_pem = broker_key.private_bytes(pem, pkcs8, serialization.NoEncryption())
    files.broker.write_bytes(broker_key_pem + broker_cert.public_bytes(pem))
    files.client_cert.write_bytes(client_cert.public_bytes(pem))
    encrypt = serialization.BestAvailableEncryption(files.client_key_password.encode())
    files.client_key.write_bytes(client_key.private_bytes(pem, pkcs8, encrypt))
    files.client_key_password_file.write_text(files.client_key_password + "\n")
    for path in (files.broker, files.client_key, files.client_key_password_file):
        path.chmod(0o600)
    return files


_KeyAndCert = tuple["EllipticCurvePrivateKey", "x509.Certificate"]


def _certificate(
    name: str, issuer: _KeyAndCert | None, hosts: tuple[str, ...], *, is_ca: bool
) -> _KeyAndCert:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key = issuer[0] if issuer else key
    issuer_name = issuer[1].subject if issuer else subject
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    return key, cert
