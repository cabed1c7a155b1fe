"""The kubelet's certificate files on a twin host: /var/lib/kubelet/pki/kubelet-{client,server}-*.pem."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sim.twin.hostview import KUBELET_PKI, host_path
from sim.twin.layout import HostSpec, TwinSpec


def install(spec: TwinSpec, host: HostSpec, kind: str, cert_pem: bytes, key_pem: bytes) -> Path:
    """Write kubelet-<kind>-<date>.pem (certificate + key) and point kubelet-<kind>-current.pem at it,
    as the kubelet's certificate manager does."""
    pki = spec.in_host(host, KUBELET_PKI)
    pki.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    name = f"kubelet-{kind}-{stamp}.pem"
    dated = pki / name
    tmp = pki / f".{name}.tmp"
    tmp.write_bytes(cert_pem + key_pem)
    tmp.chmod(0o600)
    tmp.replace(dated)
    current = pki / f"kubelet-{kind}-current.pem"
    link = pki / f".kubelet-{kind}-current.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(f"{KUBELET_PKI}/{name}")
    link.replace(current)
    return dated


def expire(spec: TwinSpec, host: HostSpec, kind: str = "client") -> None:
    """Replace the current certificate with one for the same subject that expired an hour ago."""
    path = host_path(spec, host, f"{KUBELET_PKI}/kubelet-{kind}-current.pem")
    try:
        old = x509.load_pem_x509_certificate(path.read_bytes())
        subject = old.subject
    except (OSError, ValueError):
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{host.name}"),
            ]
        )
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if kind == "client" else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-csr-signer")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=31))
        .not_valid_after(now - datetime.timedelta(hours=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    install(spec, host, kind, cert.public_bytes(serialization.Encoding.PEM), key_pem)
