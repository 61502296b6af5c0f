"""The real server process with security on: HTTPS from the configured certificate and key, keys
from the keys file, and a public bind refused at start-up when no credential is configured."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from overdrive.evaluation.server_process import ServerProcess
from overdrive.security.keys import KeyEntry, append_key, key_digest, new_key
from tests.real_servers import app_env


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_with_keys(tmp_path: Path) -> None:
    cert, key_file = _self_signed(tmp_path)
    key = new_key()
    append_key(tmp_path / "keys.json", KeyEntry(id="ops", sha256=key_digest(key), scopes=frozenset({"admin"})))
    env = {k: v for k, v in app_env(tmp_path).items() if k != "OVERDRIVE_DATA_DIR"}
    env |= {"OVERDRIVE_TLS_CERT_FILE": str(cert), "OVERDRIVE_TLS_KEY_FILE": str(key_file),
            "OVERDRIVE_API_KEYS_FILE": str(tmp_path / "keys.json")}
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=server.verify) as client:
            assert client.get("/health/live").status_code == 200
            assert client.get("/rank/strategies").status_code == 401
            assert client.get("/rank/strategies", headers={"X-API-Key": key}).status_code == 200
        with httpx.Client(base_url=server.url.replace("https", "http")) as plain:  # no plain HTTP beside it
            try:
                answered = plain.get("/health/live").status_code
            except httpx.TransportError:
                answered = None
            assert answered != 200


def test_a_public_bind_without_credentials_does_not_start(tmp_path: Path) -> None:
    env = {**os.environ, **app_env(tmp_path), "OVERDRIVE_HOST": "0.0.0.0"}
    done = subprocess.run([sys.executable, "-m", "overdrive.app"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "OVERDRIVE_HOST" in done.stderr and "without credentials" in done.stderr
    assert "OVERDRIVE_API_KEYS_FILE" in done.stderr  # and it says what to set
