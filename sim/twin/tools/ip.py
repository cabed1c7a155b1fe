"""`ip address` for a twin host: the host's addresses and keepalived's VIPs, kept in a state file.

Nothing here touches the machine's real network.
"""

from __future__ import annotations

import ipaddress
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import invocations
import runtime

VALID = "valid_lft forever preferred_lft forever"
OBJECTS = ("address", "addr", "addres", "addre", "add", "ad", "a")


def load() -> list[dict]:
    return runtime.read_json(runtime.IP_STATE, [])  # type: ignore[return-value]


def line(index: int, dev: str, addr: dict) -> str:
    network = ipaddress.ip_interface(addr["cidr"]).network
    scope = "host" if dev == "lo" else "global"
    brd = f"brd {network.broadcast_address} " if network.prefixlen < 31 and dev != "lo" else ""
    label = f" {dev}" if dev == "lo" or not addr.get("secondary") else f" secondary {dev}"
    family = "inet" if network.version == 4 else "inet6"
    return f"{index}: {dev}    {family} {addr['cidr']} {brd}scope {scope}{label}\\       {VALID}"


def show(interfaces: list[dict], one_line: bool, dev_filter: str | None) -> int:
    out = []
    for index, iface in enumerate(interfaces, start=1):
        if dev_filter and iface["name"] != dev_filter:
            continue
        if one_line:
            out.extend(line(index, iface["name"], a) for a in iface["addresses"])
            continue
        flags = "<LOOPBACK,UP,LOWER_UP>" if iface["name"] == "lo" else "<BROADCAST,MULTICAST,UP,LOWER_UP>"
        out.append(
            f"{index}: {iface['name']}: {flags} mtu {iface.get('mtu', 1500)} "
            "qdisc noqueue state UNKNOWN group default qlen 1000"
        )
        out.append(
            f"    link/{'loopback' if iface['name'] == 'lo' else 'ether'} "
            f"{iface.get('mac', '00:00:00:00:00:00')} brd ff:ff:ff:ff:ff:ff"
        )
        for addr in iface["addresses"]:
            text = line(index, iface["name"], addr).split("    ", 1)[1].replace("\\       ", "\n       ")
            out.append(f"    {text}")
    if dev_filter and not any(i["name"] == dev_filter for i in interfaces):
        sys.stderr.write(f'Device "{dev_filter}" does not exist.\n')
        return 1
    sys.stdout.write("".join(f"{o}\n" for o in out))
    return 0


def change(interfaces: list[dict], verb: str, args: list[str]) -> int:
    if os.geteuid() != 0:
        sys.stderr.write("RTNETLINK answers: Operation not permitted\n")
        return 2
    if len(args) < 3 or args[1] != "dev":
        sys.stderr.write("Usage: ip address {add|del} IFADDR dev IFNAME\n")
        return 255
    address, dev = args[0], args[2]
    iface = next((i for i in interfaces if i["name"] == dev), None)
    if iface is None:
        sys.stderr.write(f'Cannot find device "{dev}"\n')
        return 1
    try:
        wanted = ipaddress.ip_interface(address if "/" in address else f"{address}/32")
    except ValueError:
        sys.stderr.write(f'Error: any valid prefix is expected rather than "{address}".\n')
        return 1
    present = [a for a in iface["addresses"] if ipaddress.ip_interface(a["cidr"]).ip == wanted.ip]
    if verb == "del":
        if not present:
            sys.stderr.write("RTNETLINK answers: Cannot assign requested address\n")
            return 2
        iface["addresses"] = [a for a in iface["addresses"] if a not in present]
    else:
        if present:
            sys.stderr.write("RTNETLINK answers: File exists\n")
            return 2
        iface["addresses"].append({"cidr": str(wanted), "secondary": True})
    runtime.write_json(runtime.IP_STATE, interfaces)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    one_line = False
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-o", "-oneline", "--oneline"):
            one_line = True
        elif flag not in ("-4", "-6", "-br", "-c", "-color"):
            sys.stderr.write(f'Option "{flag}" is unknown, try "ip -help".\n')
            return 255
    if not args or args[0] not in OBJECTS:
        sys.stderr.write(
            "Usage: ip [ OPTIONS ] address { show | add | del } ...\n"
            "(twin host: only 'address' is simulated)\n"
        )
        return 255
    rest = args[1:]
    interfaces = load()
    verb = rest[0] if rest else "show"
    if verb in ("show", "list", "lst", "sh", "s", "l"):
        dev = rest[rest.index("dev") + 1] if "dev" in rest[:-1] else (rest[1] if len(rest) > 1 else None)
        return show(interfaces, one_line, dev)
    if verb in ("del", "delete", "d"):
        return change(interfaces, "del", rest[1:])
    if verb in ("add", "a"):
        return change(interfaces, "add", rest[1:])
    sys.stderr.write(f'Command "{verb}" is unknown, try "ip address help".\n')
    return 255


if __name__ == "__main__":
    sys.exit(invocations.logged("ip", main))
