"""Is a certificate signing request what a kubelet would file? Pure checks on plain data (5.4.3).

Approving a forged CSR hands a node identity to whoever filed it, so each pending CSR is checked
against what its signer expects before anyone is offered to approve it in bulk:

- node-bootstrapper client CSRs (signer kubernetes.io/kube-apiserver-client-kubelet) come from the
  machine-config-operator's node-bootstrapper service account, or from the node itself (renewal);
- kubelet-serving CSRs (signer kubernetes.io/kubelet-serving) come from system:node:<that node>;
- the subject is CN=system:node:<node>, O=system:nodes, and <node> is a known Node or Machine;
- the key usages are the signer's; a client CSR carries no SANs, a serving CSR only the node's own
  names and addresses.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from procedures.i18n import Msg, msg, t

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
NODE_PREFIX = "system:node:"
OPTIONAL_USAGES = {"digital signature", "key encipherment"}
REQUIRED_USAGE = {CLIENT_SIGNER: "client auth", SERVING_SIGNER: "server auth"}
CLIENT, SERVING, OTHER = "client", "serving", "other"


@dataclass(frozen=True)
class NodeNames:
    """What the cluster knows about a node: its addresses and host names (for serving SANs)."""

    ips: frozenset[str] = frozenset()
    dns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CsrView:
    name: str
    uid: str
    requestor: str
    signer: str
    wave: str
    node: str
    created: str
    """creationTimestamp: the panel shows the age when it is drawn, so the panel's data stays stable."""
    pending: bool
    approved: bool
    denied: bool
    problems: tuple[Msg, ...] = field(default_factory=tuple)
    subject: str = ""
    sans: tuple[str, ...] = ()
    usages: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uid": self.uid,
            "requestor": self.requestor,
            "signer": self.signer,
            "wave": self.wave,
            "node": self.node,
            "created": self.created,
            "pending": self.pending,
            "problems": [p.to_json() for p in self.problems],
            "subject": self.subject,
            "sans": list(self.sans),
            "usages": list(self.usages),
        }


def classify(csr: Mapping[str, Any], known: Mapping[str, NodeNames]) -> CsrView:
    """Check one CSR (as the API returns it, a dict) against the nodes and Machines the cluster knows."""
    metadata, spec = csr.get("metadata") or {}, csr.get("spec") or {}
    conditions = {c.get("type") for c in (csr.get("status") or {}).get("conditions") or []}
    signer = spec.get("signerName", "")
    requestor = spec.get("username", "")
    wave = {CLIENT_SIGNER: CLIENT, SERVING_SIGNER: SERVING}.get(signer, OTHER)
    problems: list[Msg] = []
    subject, node, sans = "", "", ()
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
    except ValueError:
        problems.append(msg("csr.check.unreadable"))
        request = None
    if request is not None:
        subject = request.subject.rfc4514_string()
        node, subject_problems = _subject_node(request)
        problems += subject_problems
        sans = _sans(request)
    if wave == OTHER:
        problems.append(msg("csr.check.signer", signer=signer or "-"))
    else:
        problems += _requestor_problems(wave, requestor, node)
        problems += _usage_problems(signer, spec.get("usages") or [])
    if node and node not in known:
        problems.append(msg("csr.check.unknown_node", node=node))
    problems += _san_problems(wave, sans, known.get(node))
    return CsrView(
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        requestor=requestor,
        signer=signer,
        wave=wave,
        node=node,
        created=metadata.get("creationTimestamp") or "",
        pending=not conditions & {"Approved", "Denied", "Failed"},
        approved="Approved" in conditions,
        denied="Denied" in conditions,
        problems=tuple(problems),
        subject=subject,
        sans=sans,
        usages=tuple(spec.get("usages") or ()),
    )


def _subject_node(request: x509.CertificateSigningRequest) -> tuple[str, list[Msg]]:
    names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = {str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)}
    common = str(names[0].value) if names else ""
    problems = []
    if not common.startswith(NODE_PREFIX) or len(common) == len(NODE_PREFIX):
        problems.append(msg("csr.check.subject_cn", cn=common or "-"))
    if orgs != {"system:nodes"}:
        problems.append(msg("csr.check.subject_o", orgs=", ".join(sorted(orgs)) or "-"))
    return common.removeprefix(NODE_PREFIX), problems


def _requestor_problems(wave: str, requestor: str, node: str) -> list[Msg]:
    allowed = {f"{NODE_PREFIX}{node}"} if node else set()
    if wave == CLIENT:
        allowed.add(BOOTSTRAPPER)
    return [] if requestor in allowed else [msg(f"csr.check.requestor_{wave}", requestor=requestor or "-")]


def _usage_problems(signer: str, usages: list[str]) -> list[Msg]:
    required = REQUIRED_USAGE[signer]
    extra = set(usages) - OPTIONAL_USAGES - {required}
    if required not in usages or extra:
        return [msg("csr.check.usages", usages=", ".join(usages) or "-", required=required)]
    return []


def _sans(request: x509.CertificateSigningRequest) -> tuple[str, ...]:
    try:
        names = request.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return ()
    dns = [f"DNS:{n}" for n in names.get_values_for_type(x509.DNSName)]
    ips = [f"IP:{ip}" for ip in names.get_values_for_type(x509.IPAddress)]
    other = len(list(names)) - len(dns) - len(ips)
    return tuple(dns + ips + ["other"] * other)


def _san_problems(wave: str, sans: tuple[str, ...], names: NodeNames | None) -> list[Msg]:
    if wave == CLIENT and sans:
        return [msg("csr.check.client_sans", sans=", ".join(sans))]
    if wave != SERVING or names is None:
        return []
    foreign = [s for s in sans if not _belongs(s, names)]
    return [msg("csr.check.serving_sans", sans=", ".join(foreign))] if foreign else []


def _belongs(san: str, names: NodeNames) -> bool:
    kind, _, value = san.partition(":")
    if kind == "IP":
        return str(ipaddress.ip_address(value)) in names.ips
    return kind == "DNS" and value in names.dns


def age_seconds(created: str, now: datetime | None = None) -> int:
    if not created:
        return 0
    when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))


def offered_digest(panel: Mapping[str, Any]) -> str:
    """Names the set of valid CSRs a panel offers for bulk approval; "approve all" carries it, so a
    click approves exactly what the clicker saw, or nothing if the set has changed since."""
    uids = sorted(v["uid"] for v in panel["offered"] if v["pending"] and not v["problems"])
    return hashlib.sha256(" ".join(uids).encode()).hexdigest()[:16]


def known_nodes(nodes: list[Mapping[str, Any]], machines: list[Mapping[str, Any]]) -> dict[str, NodeNames]:
    """Node names (with their addresses) and the node names Machines stand for."""
    known: dict[str, NodeNames] = {}
    for node in nodes:
        addresses = (node.get("status") or {}).get("addresses") or []
        ips = frozenset(a["address"] for a in addresses if a.get("type", "").endswith("IP"))
        dns = frozenset(a["address"] for a in addresses if not a.get("type", "").endswith("IP"))
        name = (node.get("metadata") or {}).get("name", "")
        known[name] = NodeNames(ips, dns | {name})
    for machine in machines:
        node_ref = ((machine.get("status") or {}).get("nodeRef") or {}).get("name")
        for name in filter(None, (node_ref, (machine.get("metadata") or {}).get("name"))):
            known.setdefault(name, NodeNames())
    return known


def not_ready(nodes: list[Mapping[str, Any]]) -> list[str]:
    out = []
    for node in nodes:
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if not ready:
            out.append((node.get("metadata") or {}).get("name", ""))
    return sorted(out)


def describe(view: Mapping[str, Any], language: str = "en") -> str:
    """What `oc describe csr` shows, plus drbot's checks, from a CsrView's JSON form."""
    lines = [
        f"Name:               {view['name']}",
        f"Requesting User:    {view['requestor']}",
        f"Signer:             {view['signer']}",
        f"Status:             {'Pending' if view['pending'] else 'Decided'}",
        f"Subject:            {view['subject']}",
        f"Subject Alt Names:  {', '.join(view['sans']) or '-'}",
        f"Usages:             {', '.join(view['usages']) or '-'}",
        f"Age:                {age_seconds(view['created'])}s",
    ]
    checks = [t(Msg.from_json(p), language) for p in view["problems"]] or [t("csr.check.ok", language)]
    return "\n".join([*lines, "", *(f"• {c}" for c in checks)])
