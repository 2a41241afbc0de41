"""Test certificates: the broker's is issued by the CA for the loopback address, and the
client key opens only with its passphrase."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.harness.tls import make_tls_files


def test_certificates_chain_to_the_ca_and_name_the_loopback_address(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    broker = x509.load_pem_x509_certificate(files.broker.read_bytes())
    client = x509.load_pem_x509_certificate(files.client_cert.read_bytes())
    broker.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    # The broker reads an unencrypted PKCS#8 key from the same file as its certificate.
    assert b"-----BEGIN PRIVATE KEY-----" in files.broker.read_bytes()


def test_the_client_key_needs_its_passphrase(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    key = files.client_key.read_bytes()
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(key, password=None)
    phrase = files.client_key_password_file.read_text().strip()
    assert serialization.load_pem_private_key(key, password=phrase.encode())
    assert oct(files.client_key.stat().st_mode & 0o777) == "0o600"
