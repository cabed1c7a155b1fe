"""The cluster-backup.sh and cluster-restore.sh a twin installs on its hosts: its own, or OpenShift's,
copied from a real control-plane host (`drbot twin up --scripts-from DIR`).

On a real host, the etcd operator's installer writes the scripts from a template in which the etcd
variables a script reads are spelled NODE_NODE_ENVVAR_NAME_IP (…_ETCD_NAME, …_ETCD_URL_HOST), with
NODE_ENVVAR_NAME replaced by the node's name; the etcd pod copies them to /usr/local/bin. Scripts
copied from a host therefore name that host: each twin host gets them naming itself. etcd.env and
etcd-common-tools stay the twin's, since they describe the twin's etcd.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sim.twin.layout import HostSpec, TwinError

SCRIPTS = ("cluster-backup.sh", "cluster-restore.sh")
OWN = Path(str(resources.files("sim.twin"))) / "scripts"
MAX_BYTES = 1 << 20
"""OpenShift's scripts are a few kB; anything this large was copied by mistake."""
SHEBANG = re.compile(r"#!\s*(/usr/bin/env\s+(ba)?sh|(/usr)?/bin/(ba)?sh)(\s|$)")
NODE_VARIABLE = re.compile(r"NODE_(\w+?)_(?:IP|ETCD_NAME|ETCD_URL_HOST)\b")
HOW_TO_COPY = "ssh core@NODE sudo cat /usr/local/bin/{name} > {path}"


@dataclass(frozen=True)
class HostScripts:
    """Each script's text as given, and the node name (env-var form) it spells its etcd variables with."""

    texts: Mapping[str, str]
    nodes: Mapping[str, str | None]

    def for_host(self, name: str, host: HostSpec) -> str:
        node = self.nodes[name]
        text = self.texts[name]
        return text if node is None else text.replace(f"NODE_{node}_", f"NODE_{host.key}_")


def own() -> HostScripts:
    texts = {name: (OWN / name).read_text() for name in SCRIPTS}
    return HostScripts(texts, {name: _node(name, text) for name, text in texts.items()})


def load(directory: Path) -> HostScripts:
    """The scripts in `directory`, checked; TwinError says what is wrong with them and how to fix it."""
    directory = directory.resolve()
    if not directory.is_dir():
        raise TwinError(
            f"--scripts-from {directory}: no such directory; give the directory holding "
            f"{' and '.join(SCRIPTS)} copied from a control-plane host's /usr/local/bin"
        )
    texts = {name: _read(directory / name) for name in SCRIPTS}
    return HostScripts(texts, {name: _node(name, text) for name, text in texts.items()})


def _read(path: Path) -> str:
    if not path.exists():
        raise TwinError(
            f"--scripts-from {path.parent} has no {path.name}; copy it from a control-plane host, e.g. "
            + HOW_TO_COPY.format(name=path.name, path=path)
        )
    if not path.is_file():
        raise TwinError(f"--scripts-from: {path} is not a file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise TwinError(f"--scripts-from: {path} has {size} bytes, not a shell script of a few kB")
    try:
        text: str | None = path.read_text()
    except UnicodeDecodeError:
        text = None
    except OSError as error:
        raise TwinError(f"--scripts-from: cannot read {path}: {error.strerror}") from None
    if text is None or "\0" in text:
        raise TwinError(f"--scripts-from: {path} is not a shell script (it is not text)")
    first = text.splitlines()[0] if text else ""
    if not SHEBANG.match(first):
        raise TwinError(
            f"--scripts-from: {path} is not a shell script: its first line is {first[:60]!r}, "
            "where OpenShift's scripts have #!/usr/bin/env bash"
        )
    # bash only parses here (-n): nothing of the script runs on this machine.
    parsed = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    if parsed.returncode != 0:
        raise TwinError(f"--scripts-from: bash cannot parse {path}: {parsed.stderr.strip()[:300]}")
    return text


def _node(name: str, text: str) -> str | None:
    """The one node a script's etcd variables name (NODE_ENVVAR_NAME in a template), or None."""
    nodes = sorted(set(NODE_VARIABLE.findall(text)))
    if len(nodes) > 1:
        raise TwinError(
            f"--scripts-from: {name} reads the etcd variables of several nodes ({', '.join(nodes)}); "
            "copy it unchanged from one control-plane host"
        )
    return nodes[0] if nodes else None
