"""The twin's etcd PKI: a signer CA and per-node serving, peer and metrics certificates, as in OpenShift."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class Pair:
    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    # EC keys are generated in microseconds; RSA would dominate `twin up` time.
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


class Authority:
    def __init__(self, common_name: str) -> None:
        self.key = _key()
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, "openshift"))
            .issuer_name(_name(common_name, "openshift"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, org: str, hosts: list[str], server: bool, client: bool) -> Pair:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        usages = [
            u
            for u, on in (
                (ExtendedKeyUsageOID.SERVER_AUTH, server),
                (ExtendedKeyUsageOID.CLIENT_AUTH, client),
            )
            if on
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, org))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Pair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _sans(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def write_pair(directory: Path, stem: str, pair: Pair) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.crt").write_bytes(pair.cert)
    key = directory / f"{stem}.key"
    key.write_bytes(pair.key)
    key.chmod(0o600)


@dataclass(frozen=True)
class EtcdPki:
    """Everything a host's etcd-certs directory holds, plus a client pair for tools on the machine."""

    ca: bytes
    client: Pair
    per_node: dict[str, dict[str, Pair]]


def make_etcd_pki(nodes: dict[str, str]) -> EtcdPki:
    """`nodes` maps node name to address."""
    signer = Authority("etcd-signer")
    per_node: dict[str, dict[str, Pair]] = {}
    for name, address in nodes.items():
        hosts = [name, address, "localhost", "127.0.0.1", "::1"]
        per_node[name] = {
            "serving": signer.issue(f"system:etcd-server:{name}", "system:etcd-servers", hosts, True, True),
            "peer": signer.issue(f"system:etcd-peer:{name}", "system:etcd-peers", hosts, True, True),
            "serving-metrics": signer.issue(
                f"system:etcd-metric:{name}", "system:etcd-metrics", hosts, True, True
            ),
        }
    client = signer.issue("etcd", "etcd-client", [], False, True)
    return EtcdPki(ca=signer.pem, client=client, per_node=per_node)


def write_etcd_certs(certs_dir: Path, pki: EtcdPki) -> None:
    """Lay the PKI out as OpenShift does under /etc/kubernetes/static-pod-resources/etcd-certs."""
    all_certs = certs_dir / "secrets" / "etcd-all-certs"
    for node, pairs in pki.per_node.items():
        for kind, pair in pairs.items():
            write_pair(all_certs, f"etcd-{kind}-{node}", pair)
    client_dir = certs_dir / "secrets" / "etcd-client"
    client_dir.mkdir(parents=True, exist_ok=True)
    (client_dir / "tls.crt").write_bytes(pki.client.cert)
    (client_dir / "tls.key").write_bytes(pki.client.key)
    (client_dir / "tls.key").chmod(0o600)
    for bundle in (
        "etcd-serving-ca",
        "etcd-peer-client-ca",
        "etcd-metrics-proxy-serving-ca",
        "etcd-metrics-proxy-client-ca",
    ):
        target = certs_dir / "configmaps" / bundle
        target.mkdir(parents=True, exist_ok=True)
        (target / "ca-bundle.crt").write_bytes(pki.ca)


def write_client_files(directory: Path, pki: EtcdPki) -> None:
    """DIR/pki: what etcdctl on the machine needs to talk to the twin's etcd."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "etcd-ca.crt").write_bytes(pki.ca)
    write_pair(directory, "etcd-client", pki.client)


def kubelet_pair(node: str, address: str) -> bytes:
    """A self-signed kubelet certificate+key PEM, like /var/lib/kubelet/pki/kubelet-*-current.pem."""
    ca = Authority(f"kubelet-signer-{node}")
    pair = ca.issue(f"system:node:{node}", "system:nodes", [node, address], True, True)
    return pair.cert + pair.key
