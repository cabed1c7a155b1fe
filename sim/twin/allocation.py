"""Machine-wide record of which twin uses which loopback address block, so two twins never collide."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from sim.twin.layout import MAX_BLOCK, TwinError, block_address

REGISTRY = Path("/var/lib/drbot-twin/allocations.json")


@contextlib.contextmanager
def _locked() -> Iterator[dict[str, dict[str, str]]]:
    REGISTRY.parent.mkdir(parents=True, exist_ok=True)
    with open(REGISTRY.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            table = json.loads(REGISTRY.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            table = {}
        yield table
        REGISTRY.write_text(json.dumps(table, indent=1, sort_keys=True))


def allocate(name: str, directory: Path, first_address: str | None, is_live: Callable[[Path], bool]) -> str:
    """Reserve an address block for the twin in `directory` and return its first address."""
    with _locked() as table:
        for address, owner in list(table.items()):
            if owner["dir"] == str(directory) or not is_live(Path(owner["dir"])):
                del table[address]
        if first_address is not None:
            owner = table.get(first_address)
            if owner:
                raise TwinError(
                    f"addresses from {first_address} belong to twin {owner['name']!r} in {owner['dir']}; "
                    f"stop it (drbot twin down --dir {owner['dir']}) or pick another --first-address"
                )
            chosen = first_address
        else:
            free = [block_address(b) for b in range(1, MAX_BLOCK + 1) if block_address(b) not in table]
            if not free:
                raise TwinError(
                    f"all {MAX_BLOCK} twin address blocks are taken; "
                    "stop a twin with: drbot twin down --dir DIR"
                )
            chosen = free[0]
        table[chosen] = {"name": name, "dir": str(directory)}
        return chosen


def release(directory: Path) -> None:
    with _locked() as table:
        for address, owner in list(table.items()):
            if owner["dir"] == str(directory):
                del table[address]


def check_free(addresses: list[str], ports: tuple[int, ...]) -> None:
    for address in addresses:
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                # Servers set SO_REUSEADDR; without it, connections in TIME_WAIT would look like a listener.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((address, port))
                except OSError as error:
                    if error.errno != errno.EADDRINUSE:
                        raise
                    raise TwinError(
                        f"{address}:{port} is already in use (see: ss -ltnp 'src {address}'); "
                        "stop what listens "
                        "there or start the twin on other addresses with --first-address (e.g. 127.0.0.21)"
                    ) from None
