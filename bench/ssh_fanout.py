"""SSH fan-out through workers.ssh.SshPool against throwaway local sshds, next to the anchors' targets.

    cd /work/main && uv run python -m bench.ssh_fanout [--hosts 3,10] [--reps 9] [--sleep-reps 5]

Starts one sshd per host on 127.0.0.60, .61, ... (needs root), measures, prints a table of
median (min-max) in ms, and stops every sshd and removes its files, also on Ctrl-C.
Targets come from shared/reference/performance-anchors.md. The hosts share this machine's CPU
with the client, so new-connection figures are CPU-bound (see the anchors' caveat).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from procedures.clusters import Host
from tests.sshd_fixture import running_sshds
from workers.ssh import SshPool

FIRST_ADDRESS = 60
LAST_ADDRESS = 89
# sshd needs a moment after auth before the first session opens fast (anchors, observation 2);
# pooled figures are taken after this pause, as a pre-connected pool would be.
SETTLE = 0.3


def _ms(seconds: Sequence[float]) -> str:
    values = [s * 1000 for s in seconds]
    return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"


def _repeat(reps: int, measure: Callable[[], float]) -> list[float]:
    measure()
    return [measure() for _ in range(reps)]


def _check(results: Sequence[object]) -> None:
    failed = [r for r in results if not getattr(r, "ok", False)]
    if failed:
        raise SystemExit(f"benchmark command failed: {failed}")


def connect_auth(host: Host, warm: bool) -> float:
    """preconnect() on one host: TCP, key exchange, host key check, auth (and a first session)."""
    with SshPool() as pool:
        start = time.perf_counter()
        errors = pool.preconnect([host], warm=warm)
        elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"connect failed: {errors}")
    return elapsed


def first_exec(host: Host) -> float:
    """`true` as the first command of a new pool: connect+auth, sshd's session setup, exec."""
    with SshPool() as pool:
        start = time.perf_counter()
        result = pool.run(host, "true")
        elapsed = time.perf_counter() - start
    _check([result])
    return elapsed


def exec_after_preconnect(host: Host) -> float:
    """`true` right after preconnect(), which absorbs sshd's first-session setup."""
    with SshPool() as pool:
        pool.preconnect([host])
        start = time.perf_counter()
        result = pool.run(host, "true")
        elapsed = time.perf_counter() - start
    _check([result])
    return elapsed


def fresh_fan_out(hosts: Sequence[Host], command: str) -> float:
    """A new pool running `command` on every host: connect+auth+exec, all hosts in parallel."""
    with SshPool() as pool:
        start = time.perf_counter()
        results = pool.run_many(hosts, command, max_parallel=len(hosts))
        elapsed = time.perf_counter() - start
    _check(results)
    return elapsed


def pooled(pool: SshPool, hosts: Sequence[Host], command: str) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        if len(hosts) == 1:
            results = [pool.run(hosts[0], command)]
        else:
            results = pool.run_many(hosts, command, max_parallel=len(hosts))
        elapsed = time.perf_counter() - start
        _check(results)
        return elapsed

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="3,10", help="comma-separated host counts (max 30)")
    parser.add_argument("--reps", type=int, default=9, help="repetitions for `true` and connects")
    parser.add_argument("--sleep-reps", type=int, default=5, help="repetitions for `sleep 1`")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.hosts.split(",")})
    if not counts or counts[0] < 1 or counts[-1] > LAST_ADDRESS - FIRST_ADDRESS + 1:
        raise SystemExit("--hosts: give counts between 1 and 30, e.g. --hosts 3,10")
    addresses = [f"127.0.0.{FIRST_ADDRESS + i}" for i in range(counts[-1])]
    print(f"starting {len(addresses)} sshd on {addresses[0]}..{addresses[-1]}")
    with running_sshds(addresses) as servers:
        hosts = [server.host(f"host-{i}") for i, server in enumerate(servers)]
        rows: list[tuple[str, str, str]] = []
        rows.append(
            (
                "connect+auth, 1 host: preconnect(warm=False)",
                _ms(_repeat(args.reps, lambda: connect_auth(hosts[0], warm=False))),
                "<= 30",
            )
        )
        rows.append(
            (
                "connect+auth+first session: preconnect()",
                _ms(_repeat(args.reps, lambda: connect_auth(hosts[0], warm=True))),
                "~30 + ~45 sshd setup",
            )
        )
        rows.append(
            (
                "first command of a new pool, 1 host",
                _ms(_repeat(args.reps, lambda: first_exec(hosts[0]))),
                "~76 (anchor c', N=1)",
            )
        )
        rows.append(
            (
                "first command right after preconnect()",
                _ms(_repeat(args.reps, lambda: exec_after_preconnect(hosts[0]))),
                "<= 5",
            )
        )
        with SshPool() as pool:
            errors = pool.preconnect(hosts, max_parallel=len(hosts))
            if errors:
                raise SystemExit(f"preconnect failed: {errors}")
            time.sleep(SETTLE)
            single_true = _repeat(args.reps, pooled(pool, hosts[:1], "true"))
            rows.append(("exec `true`, open connection, 1 host", _ms(single_true), "<= 5"))
            single_sleep = _repeat(args.sleep_reps, pooled(pool, hosts[:1], "sleep 1"))
            rows.append(("exec `sleep 1`, open connection, 1 host", _ms(single_sleep), "~1005"))
            for n in counts:
                true_n = _repeat(args.reps, pooled(pool, hosts[:n], "true"))
                target = {3: "<= 7 (anchor)", 10: "<= 20 (anchor)", 30: "<= 70"}.get(n, "-")
                rows.append((f"fan-out `true`, pooled, {n} hosts", _ms(true_n), target))
                cpu_start = time.process_time()
                sleep_n = _repeat(args.sleep_reps, pooled(pool, hosts[:n], "sleep 1"))
                cpu = (time.process_time() - cpu_start) / (args.sleep_reps + 1)
                ratio = statistics.median(sleep_n) / statistics.median(single_sleep)
                rows.append(
                    (
                        f"fan-out `sleep 1`, pooled, {n} hosts",
                        f"{_ms(sleep_n)} = {ratio:.3f}x single, client CPU {cpu * 1000:.0f} ms",
                        "<= 1.1x single",
                    )
                )
        for n in counts:
            fresh = _repeat(args.reps, lambda n=n: fresh_fan_out(hosts[:n], "true"))
            target = {3: "~96 (anchor)", 10: "~200 (anchor)", 30: "<= 600"}.get(n, "-")
            rows.append((f"fan-out `true`, new connections, {n} hosts", _ms(fresh), target))
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"\n{'measure':<{width}}  {'ms: median (min-max)':<{value_width}}  target (ms)")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {target}")
    print(
        f"\n`true`: 1 warm-up + {args.reps} reps; `sleep 1`: 1 warm-up + {args.sleep_reps} reps; "
        "all sshds stopped"
    )


if __name__ == "__main__":
    main()
