"""HTTPS for the controller: browsers give a page the microphone only over HTTPS (or on
localhost), so the live page needs TLS when phones reach the controller by its LAN address.

Either a certificate the ward provides (``--tls-cert``/``--tls-key``) or one generated here,
self-signed, for the controller's host names and addresses (``--tls-self-signed``), kept in
``<data_dir>/tls/`` and reused. See docs/live.md for installing it on the phones.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
from pathlib import Path

logger = logging.getLogger(__name__)

VALID_DAYS = 825  # the longest validity Apple devices accept for a TLS server certificate


def default_hosts() -> list[str]:
    """localhost, this machine's name and its LAN address (best effort)."""
    hosts = ["localhost", "127.0.0.1", socket.gethostname()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            hosts.append(s.getsockname()[0])
        except OSError:
            pass
    return list(dict.fromkeys(hosts))


def self_signed(directory: Path, hosts: list[str] | None = None) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` in ``directory``: reused if present, else generated."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    hosts = hosts or default_hosts()
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loaphuong controller"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "loaphuong")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.warning("generated a self-signed TLS certificate for %s in %s", ", ".join(hosts), cert_path)
    return cert_path, key_path


def tls_files(cert: str | None, key: str | None, self_signed_dir: Path | None) -> tuple[str, str] | None:
    """What to give uvicorn as ``ssl_certfile``/``ssl_keyfile`` (None: plain HTTP)."""
    if (cert is None) != (key is None):
        raise SystemExit("give both --tls-cert and --tls-key")
    if cert is not None and key is not None:
        for path in (cert, key):
            if not Path(path).is_file():
                raise SystemExit(f"TLS file not found: {path}")
        return cert, key
    if self_signed_dir is not None:
        c, k = self_signed(self_signed_dir)
        return str(c), str(k)
    return None
