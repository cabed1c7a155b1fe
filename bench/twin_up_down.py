"""Time to bring a twin (hosts + its API server) up and down, and its memory: the RSS sum of every
process of its hosts and of the API server process (reported separately too).

    uv run python bench/twin_up_down.py [--hosts 3] [--rounds 3] [--first-address 127.0.0.61]

Aims: up < 10 s, down < 5 s, memory < 400 MB (3 hosts). Needs root, like the twin.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sim.twin import lifecycle


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def one_round(directory: Path, hosts: int, first_address: str | None) -> tuple[float, float, int, int, int]:
    started = time.monotonic()
    spec, _ = lifecycle.up(directory, name="bench", hosts=hosts, first_address=first_address)
    up_seconds = time.monotonic() - started
    try:
        time.sleep(2)  # let etcd, the kubelets and the node agent settle before measuring memory
        state = lifecycle.read_state(spec.dir)
        pids = [p for pid in lifecycle.running_hosts(state).values() for p in lifecycle.namespace_pids(pid)]
        api_pid = lifecycle.api_pid(state)
        api_memory = rss_bytes([api_pid]) if api_pid else 0
        memory = rss_bytes(pids) + api_memory
    finally:
        started = time.monotonic()
        lifecycle.down(directory)
        down_seconds = time.monotonic() - started
    return up_seconds, down_seconds, memory, api_memory, len(pids) + 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-address", default=None, help="e.g. 127.0.0.61 (default: a free block)")
    args = parser.parse_args()
    ups, downs, memories = [], [], []
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        for index in range(args.rounds):
            up_s, down_s, memory, api_memory, processes = one_round(
                Path(tmp) / f"round{index}", args.hosts, args.first_address
            )
            ups.append(up_s)
            downs.append(down_s)
            memories.append(memory)
            print(
                f"round {index + 1}: up {up_s:.2f} s, down {down_s:.2f} s, "
                f"memory {memory / 2**20:.0f} MB in {processes} processes "
                f"(API server {api_memory / 2**20:.0f} MB)"
            )
    print(
        f"{args.hosts} hosts, {args.rounds} rounds: up median {statistics.median(ups):.2f} s (aim < 10), "
        f"down median {statistics.median(downs):.2f} s (aim < 5), "
        f"memory max {max(memories) / 2**20:.0f} MB (aim < 400)"
    )


if __name__ == "__main__":
    main()
