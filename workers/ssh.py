"""Run shell commands on control-plane hosts over SSH, one pooled connection per host.

Why it is built this way (figures in shared/reference/performance-anchors.md):
- paramiko does not set TCP_NODELAY; Nagle plus delayed ACKs cost ~40 ms per exchange. We create
  the socket ourselves with TCP_NODELAY and hand it to paramiko (48 ms -> 3 ms per exec).
- Connect+auth and sshd's first-session setup (~45 ms) are paid once per host for the pool's life;
  every command is a new channel on the host's transport. `preconnect` takes them off the critical
  path of the first step.
- Host keys are checked against the host's known_hosts file on every connect; unknown or changed
  keys are refused, never added.

Per-host problems never raise: they come back as CommandResult(exit_code=None, error=...) with a
message naming the host and what to do. Output is capped and redacted before it leaves this module.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from procedures.clusters import Host
from procedures.steps import CommandResult
from workers.redact import redact

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 1 << 20
"""Bytes kept per stream (the last ones: a failing command explains itself at the end)."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SUDO_REFUSED = re.compile(
    r"^sudo: (?:a password is required|a terminal is required|.*is not in the sudoers file"
    r"|.*is not allowed to (?:run|execute))",
)
_READ_CHUNK = 65536


class HostUnavailable(Exception):
    """A host could not be reached, trusted or logged into; the message is for the operator."""


def remote_command(
    command: str,
    *,
    sudo: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """The command line sent to sshd.

    With sudo: `sudo -n -- [env K=V ...] [timeout -k 10 N] sh -c '<command>'`. `-n` makes a sudo
    that would prompt for a password fail at once instead of hanging the step. The remote
    `timeout` stops a root command that outlives the step: sshd signals a timed-out command as the
    login user, which cannot reach processes running as root.
    Raises ValueError for an environment variable name a shell cannot export.
    """
    assignments = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(
                f"environment variable name {name!r} is not valid: use letters, digits and '_', "
                "not starting with a digit"
            )
        assignments.append(f"{name}={shlex.quote(value)}")
    if sudo:
        env_prefix = ["env", *assignments] if assignments else []
        limit = ["timeout", "-k", "10", f"{timeout:g}"] if timeout is not None else []
        return " ".join(["sudo", "-n", "--", *env_prefix, *limit, "sh", "-c", shlex.quote(command)])
    if assignments:
        return f"export {' '.join(assignments)}; {command}"
    return command


def known_hosts_name(host: Host) -> str:
    """How OpenSSH names the host in known_hosts: the bare address on port 22, else "[addr]:port"."""
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def _where(host: Host) -> str:
    return f"{host.name} ({host.address}:{host.port})"


class _Capture:
    """One output stream, keeping only the last `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        # Trim in batches so a chatty command does not cost a copy per chunk.
        if len(self.data) > 2 * self.limit:
            self._trim()

    def _trim(self) -> None:
        cut = len(self.data) - self.limit
        if cut <= 0:
            return
        # Never start in the middle of a UTF-8 character.
        while cut < len(self.data) and self.data[cut] & 0xC0 == 0x80:
            cut += 1
        del self.data[:cut]
        self.dropped += cut

    def text(self) -> str:
        self._trim()
        text = redact(self.data.decode("utf-8", errors="replace"))
        if self.dropped:
            note = f"the first {self.dropped} bytes were dropped, the last {len(self.data)} kept"
            text = f"[drbot: output capped: {note}]\n{text}"
        return text


class _Connection:
    """The transport to one host; `lock` serialises (re)connecting, not the commands."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.transport: paramiko.Transport | None = None


class SshPool:
    """SSH connections to control-plane hosts, opened on first use and kept for the pool's life.

    Thread-safe: any number of threads may call run() and run_many() at once; commands to the same
    host share its transport, each on its own channel.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        keepalive: float = 30.0,
        output_limit: int = OUTPUT_LIMIT,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.output_limit = output_limit
        self._lock = threading.Lock()
        self._connections: dict[Host, _Connection] = {}
        self._keys: dict[str, paramiko.PKey] = {}
        self._closed = False
        self._interrupted = ""
        self._running: set[paramiko.Channel] = set()

    def __enter__(self) -> SshPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection. Commands still running on them end with a connection error."""
        with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
        for connection in connections:
            with connection.lock:
                if connection.transport is not None:
                    connection.transport.close()
                    connection.transport = None

    def interrupt(self, reason: str) -> None:
        """Stop every command still running (SIGTERM through sshd, then the channel is closed) and
        close the pool: its owner must not act any more (it lost its lease). Thread-safe."""
        with self._lock:
            self._interrupted = reason
            running = list(self._running)
        for channel in running:
            _stop(channel)
        self.close()

    def preconnect(
        self, hosts: Sequence[Host], *, max_parallel: int = 10, warm: bool = True
    ) -> dict[str, str]:
        """Connect to `hosts` in parallel ahead of the first command; returns {host name: error}.

        With `warm`, also opens and closes one session per host: sshd's first session after auth
        takes ~45 ms to set up, and this way the first real command does not wait for it.
        """

        def connect(host: Host) -> str:
            try:
                if warm:
                    self._open_channel(host, time.monotonic() + self.connect_timeout).close()
                else:
                    self._transport(host, self.connect_timeout)
            except HostUnavailable as error:
                return str(error)
            return ""

        if not hosts:
            return {}
        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(hosts)))) as executor:
            errors = list(executor.map(connect, hosts))
        return {host.name: error for host, error in zip(hosts, errors, strict=True) if error}

    def run(
        self,
        host: Host,
        command: str,
        *,
        sudo: bool = False,
        timeout: float = 300.0,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run `command` on `host` and wait for it (at most `timeout` seconds, connecting included)."""
        return self._run(
            host, remote_command(command, sudo=sudo, env=env, timeout=timeout), sudo, timeout, stdin
        )

    def run_many(
        self,
        hosts: Sequence[Host],
        command: str,
        *,
        sudo: bool = False,
        timeout: float = 300.0,
        serial: bool = False,
        max_parallel: int = 10,
        stop_on_failure: bool = False,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[CommandResult]:
        """Run `command` on every host; results are in the order of `hosts`.

        In parallel, at most `max_parallel` hosts run at once. With `serial`, hosts run one after
        the other, and `stop_on_failure` skips the rest after the first host that does not exit 0
        (the skipped hosts get exit_code None and an error saying so).
        """
        line = remote_command(command, sudo=sudo, env=env, timeout=timeout)
        if serial or len(hosts) <= 1 or max_parallel <= 1:
            results: list[CommandResult] = []
            for index, host in enumerate(hosts):
                result = self._run(host, line, sudo, timeout, stdin)
                results.append(result)
                if stop_on_failure and not result.ok:
                    reason = result.error or f"exit {result.exit_code}"
                    results.extend(
                        CommandResult(
                            host=skipped.name,
                            exit_code=None,
                            error=f"{skipped.name}: not run: {host.name} failed first ({reason}) "
                            "and this serial run stops at the first failure",
                        )
                        for skipped in hosts[index + 1 :]
                    )
                    break
            return results
        workers = min(max_parallel, len(hosts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drbot-ssh") as executor:
            return list(executor.map(lambda host: self._run(host, line, sudo, timeout, stdin), hosts))

    def copy(
        self,
        source: Host,
        path: str,
        targets: Sequence[Host],
        *,
        destination: str | None = None,
        timeout: float = 1800.0,
    ) -> list[CommandResult]:
        """Copy a root-owned file from `source` to `destination` (default: the same path) on each target,
        streamed through this process (`sudo cat` there, `sudo sh -c 'cat > part && mv …'` here) and
        checked with sha256.

        Control-plane hosts do not trust each other's SSH keys, so the bot is the only way between them;
        the file never lands on the bot's disk. Results come back in the order of `targets`.
        """
        start = time.monotonic()
        deadline = start + timeout
        results: dict[Host, CommandResult] = {}
        digest = hashlib.sha256()
        destination = destination or path
        quoted, part = shlex.quote(destination), shlex.quote(destination + ".drbot-part")
        write = f'mkdir -p "$(dirname {quoted})" && cat > {part} && mv -f {part} {quoted}'
        try:
            reader = self._open_channel(source, deadline)
        except HostUnavailable as error:
            return [
                CommandResult(t.name, None, duration=time.monotonic() - start, error=str(error))
                for t in targets
            ]
        writers: dict[Host, paramiko.Channel] = {}
        try:
            reader.exec_command(remote_command(f"cat -- {shlex.quote(path)}", sudo=True, timeout=timeout))
            reader.shutdown_write()
            for target in targets:
                try:
                    writers[target] = self._open_channel(target, deadline)
                    writers[target].exec_command(remote_command(write, sudo=True, timeout=timeout))
                except (HostUnavailable, paramiko.SSHException, OSError) as error:
                    results[target] = CommandResult(
                        target.name, None, duration=time.monotonic() - start, error=str(error)
                    )
            while time.monotonic() < deadline:
                chunk = reader.recv(_READ_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                for target, channel in list(writers.items()):
                    try:
                        channel.sendall(chunk)
                    except (OSError, EOFError, paramiko.SSHException) as error:
                        results[target] = CommandResult(
                            target.name,
                            None,
                            duration=time.monotonic() - start,
                            error=f"{_where(target)}: writing {path} failed: {error}",
                        )
                        writers.pop(target).close()
            else:
                raise TimeoutError(f"copying {path} took longer than {timeout:g} s")
            read_status = _exit_status(reader, deadline)
            if read_status != 0:
                problem = redact(reader.recv_stderr(_READ_CHUNK).decode(errors="replace").strip())
                error = f"{_where(source)}: cannot read {path} (exit {read_status}): {problem}"
                return [results.get(t) or CommandResult(t.name, None, error=error) for t in targets]
            for target, channel in writers.items():
                channel.shutdown_write()
                status = _exit_status(channel, deadline)
                error = "" if status == 0 else f"{_where(target)}: writing {path} failed (exit {status})"
                results[target] = CommandResult(
                    target.name, status, duration=time.monotonic() - start, error=error
                )
        except (paramiko.SSHException, EOFError, OSError) as error:
            for target in targets:
                results.setdefault(
                    target,
                    CommandResult(
                        target.name,
                        None,
                        duration=time.monotonic() - start,
                        error=f"copying {path} failed: {error}",
                    ),
                )
        finally:
            reader.close()
            for channel in writers.values():
                channel.close()
        return self._verify_copies(
            [results[t] for t in targets], targets, destination, digest.hexdigest(), deadline
        )

    def _verify_copies(
        self, results: list[CommandResult], targets: Sequence[Host], path: str, sha256: str, deadline: float
    ) -> list[CommandResult]:
        checked = []
        for result, target in zip(results, targets, strict=True):
            if result.ok:
                remaining = max(1.0, deadline - time.monotonic())
                check = self.run(target, f"sha256sum -- {shlex.quote(path)}", sudo=True, timeout=remaining)
                if not check.ok or check.stdout.split()[:1] != [sha256]:
                    result = CommandResult(
                        target.name,
                        None,
                        duration=result.duration,
                        error=f"{_where(target)}: {path} differs from the source after copying",
                    )
            checked.append(result)
        return checked

    def _run(self, host: Host, line: str, sudo: bool, timeout: float, stdin: str | None) -> CommandResult:
        start = time.monotonic()
        deadline = start + timeout
        try:
            channel = self._open_channel(host, deadline)
        except HostUnavailable as error:
            return CommandResult(
                host=host.name, exit_code=None, duration=time.monotonic() - start, error=redact(str(error))
            )
        with self._lock:
            self._running.add(channel)
        try:
            return self._execute(host, channel, line, sudo, timeout, deadline, start, stdin)
        except (paramiko.SSHException, EOFError, OSError) as error:
            log.warning("ssh to %s failed while a command ran", _where(host), exc_info=True)
            return CommandResult(
                host=host.name,
                exit_code=None,
                duration=time.monotonic() - start,
                error=redact(
                    f"{_where(host)}: the SSH session failed while the command ran ({error}); "
                    "its outcome on the host is unknown"
                ),
                outcome_unknown=True,
            )
        finally:
            with self._lock:
                self._running.discard(channel)
            channel.close()

    def _open_channel(self, host: Host, deadline: float) -> paramiko.Channel:
        failed: paramiko.Transport | None = None
        for attempt in (1, 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostUnavailable(f"{_where(host)}: timed out before a session could be opened")
            transport = self._transport(host, min(self.connect_timeout, remaining), stale=failed)
            try:
                return transport.open_session(timeout=min(self.connect_timeout, remaining))
            except paramiko.ChannelException as error:
                # sshd is up and answered, but refused a session (MaxSessions): reconnecting would
                # kill the other commands running on this transport.
                raise HostUnavailable(
                    f"{_where(host)}: sshd refused a new session ({error.text}); too many commands at "
                    "once on this host? raise MaxSessions in its sshd_config or lower max_parallel"
                ) from None
            except (paramiko.SSHException, EOFError, OSError) as error:
                # The pooled connection broke (sshd restarted, host rebooted): reopen it once.
                log.info("ssh connection to %s broke (%s); reconnecting", _where(host), error)
                failed = transport
                if attempt == 2:
                    raise HostUnavailable(
                        f"{_where(host)}: the SSH connection broke again right after reconnecting "
                        f"({error}); check sshd and the network on that host"
                    ) from None
        raise AssertionError("unreachable")

    def _connection(self, host: Host) -> _Connection:
        with self._lock:
            if self._interrupted:
                raise HostUnavailable(f"{_where(host)}: not sent: {self._interrupted}")
            if self._closed:
                raise RuntimeError("this SshPool is closed; create a new one")
            return self._connections.setdefault(host, _Connection())

    def _transport(
        self, host: Host, timeout: float, *, stale: paramiko.Transport | None = None
    ) -> paramiko.Transport:
        connection = self._connection(host)
        with connection.lock:
            current = connection.transport
            if current is not None and current is not stale and current.is_active():
                return current
            if current is not None:
                current.close()
                connection.transport = None
            connection.transport = self._connect(host, timeout)
            return connection.transport

    def _key(self, host: Host) -> paramiko.PKey:
        with self._lock:
            key = self._keys.get(host.key)
        if key is not None:
            return key
        try:
            key = paramiko.PKey.from_path(host.key)
        except FileNotFoundError:
            raise HostUnavailable(
                f"{_where(host)}: SSH key {host.key} does not exist; set 'key' in the clusters file to the "
                "private key drbot logs in with"
            ) from None
        except OSError as error:
            raise HostUnavailable(
                f"{_where(host)}: cannot read SSH key {host.key}: {error.strerror}"
            ) from None
        except paramiko.PasswordRequiredException:
            raise HostUnavailable(
                f"{_where(host)}: SSH key {host.key} is protected by a passphrase; drbot needs a key without "
                f"one (ssh-keygen -p -N '' -f {host.key})"
            ) from None
        except (paramiko.SSHException, paramiko.UnknownKeyType, ValueError) as error:
            raise HostUnavailable(
                f"{_where(host)}: {host.key} is not a private key drbot can use ({error}); use an "
                "ed25519, ecdsa or rsa key in OpenSSH or PEM format"
            ) from None
        with self._lock:
            self._keys[host.key] = key
        return key

    def _known_keys(self, host: Host) -> dict[str, paramiko.PKey]:
        # Read on every connect so that a fixed known_hosts file applies without restarting drbot.
        try:
            host_keys = paramiko.HostKeys(host.known_hosts)
        except FileNotFoundError:
            raise HostUnavailable(
                f"{_where(host)}: known_hosts file {host.known_hosts} does not exist; create it with the "
                f"hosts' keys (e.g. ssh-keyscan -p {host.port} {host.address} >> {host.known_hosts}, after "
                "checking the fingerprints)"
            ) from None
        except (OSError, paramiko.SSHException, ValueError) as error:
            raise HostUnavailable(
                f"{_where(host)}: cannot read known_hosts file {host.known_hosts}: {error}"
            ) from None
        entries = host_keys.lookup(known_hosts_name(host))
        return dict(entries) if entries is not None else {}

    def _connect(self, host: Host, timeout: float) -> paramiko.Transport:
        key = self._key(host)
        known = self._known_keys(host)
        started = time.monotonic()
        sock = _open_socket(host, timeout)
        transport = paramiko.Transport(sock)
        try:
            if known:
                _prefer_host_key_types(transport, known)
            transport.banner_timeout = timeout
            transport.auth_timeout = timeout
            try:
                transport.start_client(timeout=timeout)
            except (paramiko.SSHException, EOFError, OSError) as error:
                raise HostUnavailable(
                    f"{_where(host)}: SSH handshake failed ({error or type(error).__name__}); is sshd "
                    "listening on that port and reachable?"
                ) from None
            _check_host_key(host, transport.get_remote_server_key(), known)
            try:
                transport.auth_publickey(host.user, key)
            except paramiko.BadAuthenticationType as error:
                raise HostUnavailable(
                    f"{_where(host)}: sshd does not accept key authentication for {host.user!r} (it allows: "
                    f"{', '.join(error.allowed_types)}); enable PubkeyAuthentication on the host"
                ) from None
            except paramiko.AuthenticationException:
                raise HostUnavailable(
                    f"{_where(host)}: login as {host.user!r} with key {host.key} was refused; add the public "
                    f"key ({host.key}.pub) to ~{host.user}/.ssh/authorized_keys on the host, or fix 'user' "
                    "and 'key' in the clusters file"
                ) from None
            except (paramiko.SSHException, EOFError, OSError) as error:
                raise HostUnavailable(f"{_where(host)}: SSH login failed ({error})") from None
            transport.set_keepalive(int(self.keepalive))
        except BaseException:
            transport.close()
            raise
        log.debug("connected to %s in %.1f ms", _where(host), (time.monotonic() - started) * 1000)
        return transport

    def _execute(
        self,
        host: Host,
        channel: paramiko.Channel,
        line: str,
        sudo: bool,
        timeout: float,
        deadline: float,
        start: float,
        stdin: str | None,
    ) -> CommandResult:
        stdout = _Capture(self.output_limit)
        stderr = _Capture(self.output_limit)
        channel.exec_command(line)
        if stdin is None:
            # Commands that read stdin get EOF at once instead of waiting for input forever.
            channel.shutdown_write()
        else:
            threading.Thread(
                target=_feed, args=(channel, stdin.encode()), name=f"drbot-ssh-stdin-{host.name}", daemon=True
            ).start()
        # The channel's fileno() becomes readable when either stream has data or the channel ends,
        # so one loop drains both and a command flooding stderr cannot stall behind stdout.
        poller = select.poll()
        poller.register(channel.fileno(), select.POLLIN)
        timed_out = False
        while True:
            ended = channel.eof_received or channel.closed
            _drain(channel, stdout, stderr)
            if ended:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            poller.poll(remaining * 1000)
        if not timed_out and not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            timed_out = True
        duration = time.monotonic() - start
        if timed_out:
            _stop(channel)
            return CommandResult(
                host=host.name,
                exit_code=None,
                stdout=stdout.text(),
                stderr=stderr.text(),
                duration=duration,
                error=f"{_where(host)}: timed out after {timeout:g} s; the session was closed and the "
                "command told to stop (SIGTERM; with sudo, the host's `timeout` stops it)",
            )
        out_text, err_text = stdout.text(), stderr.text()
        status = channel.exit_status
        if status == -1:
            # A lost connection brings no EOF; a command killed by a signal gets EOF and an
            # "exit-signal" request, which paramiko does not record.
            unknown = True
            if self._interrupted:
                error = f"{_where(host)}: drbot stopped the command ({self._interrupted}); outcome unknown"
            elif not channel.eof_received or not channel.get_transport().is_active():
                error = f"{_where(host)}: the SSH connection was lost while the command ran; outcome unknown"
            else:
                unknown = False
                error = f"{_where(host)}: the command ended without an exit status (killed by a signal?)"
            return CommandResult(
                host.name, None, out_text, err_text, duration, error, outcome_unknown=unknown
            )
        if sudo and status == 1 and _SUDO_REFUSED.match(err_text):
            reason = err_text.splitlines()[0]
            return CommandResult(
                host.name,
                None,
                out_text,
                err_text,
                duration,
                f"{_where(host)}: sudo refused to run the command ({reason}); give {host.user!r} "
                "passwordless sudo (NOPASSWD) on the host",
            )
        return CommandResult(host.name, status, out_text, err_text, duration)


def _open_socket(host: Host, timeout: float) -> socket.socket:
    where = _where(host)
    try:
        sock = socket.create_connection((host.address, host.port), timeout=timeout)
    except socket.gaierror as error:
        raise HostUnavailable(
            f"{where}: cannot resolve {host.address!r} ({error.strerror}); check the address in the "
            "clusters file"
        ) from None
    except ConnectionRefusedError:
        raise HostUnavailable(
            f"{where}: connection refused: nothing listens on port {host.port}; check that sshd runs on the "
            "host and that the port in the clusters file is right"
        ) from None
    except TimeoutError:
        raise HostUnavailable(
            f"{where}: no answer within {timeout:g} s; the host is down, a firewall drops SSH, or the "
            "address is wrong"
        ) from None
    except OSError as error:
        if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise HostUnavailable(
                f"{where}: no route to host ({error.strerror}); check the address and the network between "
                "the drbot worker and the host"
            ) from None
        raise HostUnavailable(f"{where}: cannot connect ({error.strerror or error})") from None
    # Without TCP_NODELAY every exchange waits ~40 ms for Nagle and delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


def _prefer_host_key_types(transport: paramiko.Transport, known: Mapping[str, paramiko.PKey]) -> None:
    """Ask for the host key type known_hosts has, as OpenSSH does, so a host with several keys matches."""
    wanted: list[str] = []
    for key_type in known:
        wanted.extend(["rsa-sha2-512", "rsa-sha2-256", key_type] if key_type == "ssh-rsa" else [key_type])
    options = transport.get_security_options()
    offered = list(options.key_types)
    first = [t for t in wanted if t in offered]
    options.key_types = first + [t for t in offered if t not in first]


def _check_host_key(host: Host, server_key: paramiko.PKey, known: Mapping[str, paramiko.PKey]) -> None:
    name = known_hosts_name(host)
    offered = f"{server_key.get_name()} {server_key.fingerprint}"
    if not known:
        raise HostUnavailable(
            f"{_where(host)}: host key unknown: {name} is not in {host.known_hosts}, so drbot refuses to "
            f"connect. Check on the host that its key is {offered}, then add it (ssh-keyscan -p {host.port} "
            f"{host.address} >> {host.known_hosts})"
        )
    expected = known.get(server_key.get_name())
    if expected != server_key:
        recorded = ", ".join(f"{k.get_name()} {k.fingerprint}" for k in known.values())
        raise HostUnavailable(
            f"{_where(host)}: host key changed: the host offers {offered} but {host.known_hosts} has "
            f"{recorded} for {name}. The host was reinstalled or this is a man-in-the-middle; verify the new "
            f"key on the host, then remove the old entry (ssh-keygen -R '{name}' -f {host.known_hosts}) and "
            "add the new one"
        )


def _exit_status(channel: paramiko.Channel, deadline: float) -> int | None:
    """The command's exit status, or None if it did not end by the deadline (or ended without one)."""
    if not channel.status_event.wait(max(0.0, deadline - time.monotonic())) or channel.exit_status < 0:
        return None
    return int(channel.exit_status)


def _drain(channel: paramiko.Channel, stdout: _Capture, stderr: _Capture) -> None:
    while channel.recv_ready():
        stdout.add(channel.recv(_READ_CHUNK))
    while channel.recv_stderr_ready():
        stderr.add(channel.recv_stderr(_READ_CHUNK))


def _feed(channel: paramiko.Channel, data: bytes) -> None:
    try:
        channel.sendall(data)
        channel.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        # The channel closed first (timeout, command exited early); the result says why.
        log.debug("stdin not fully sent: channel closed")


def _stop(channel: paramiko.Channel) -> None:
    """Ask sshd to SIGTERM the command's process group, then close the channel.

    paramiko has no public call for the "signal" channel request (RFC 4254 6.9), so it is built
    by hand; sshd refuses to signal processes the login user does not own (sudo).
    """
    transport = channel.get_transport()
    if transport is not None and transport.is_active() and not channel.closed:
        message = paramiko.Message()
        message.add_byte(cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string("TERM")
        try:
            transport._send_user_message(message)
        except (OSError, EOFError, paramiko.SSHException):
            log.debug("could not send SIGTERM to the timed-out command")
    channel.close()
