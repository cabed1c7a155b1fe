"""kubelet simulator: turns /etc/kubernetes/manifests into running containers on one twin host.

Runs inside the host's mount namespace under the system python3 (standard library + PyYAML).
Containers named `etcd` run their pod command for real (bash + /usr/bin/etcd), with the pod's
volume mounts translated to host paths; every other container is simulated: it is listed, can be
stopped and exec'd into, and is restarted like a real one, but has no process.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time

import yaml

try:
    from sim.twin import runtime
except ImportError:  # run as a script by the system python inside a host
    import runtime  # type: ignore[no-redef]

MANIFESTS = "/etc/kubernetes/manifests"
POLL_SECONDS = 0.3
REAL_CONTAINERS = frozenset({"etcd"})
STOP_GRACE = 10.0
MAX_BACKOFF = 10.0
KEEP_EXITED = 40
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log = logging.getLogger("kubelet")


def path_translator(pod: dict, container: dict):
    """A function that rewrites a container's view of paths (mountPath) to the host's (hostPath)."""
    volumes = {v.get("name"): (v.get("hostPath") or {}).get("path") for v in pod["spec"].get("volumes") or []}
    pairs = []
    for mount in container.get("volumeMounts") or []:
        host_path = volumes.get(mount.get("name"))
        mount_path = str(mount.get("mountPath", "")).rstrip("/")
        if host_path and mount_path and mount_path != host_path.rstrip("/"):
            pairs.append((mount_path, host_path.rstrip("/")))
    if not pairs:
        return lambda text: text
    mapping = dict(pairs)
    pattern = re.compile(
        r"(?<![\w./-])("
        + "|".join(re.escape(p) for p, _ in sorted(pairs, key=lambda x: -len(x[0])))
        + r")(?=/|$|[^\w.-])"
    )
    return lambda text: pattern.sub(lambda m: mapping[m.group(1)], text)


def container_env(pod: dict, container: dict) -> dict[str, str]:
    translate = path_translator(pod, container)
    # A container runs its image's programs: etcdctl is there, though not on the host.
    env = {
        "PATH": f"{BASE_PATH}:{runtime.IMAGE_BIN}",
        "HOME": "/root",
        "HOSTNAME": pod["metadata"].get("name", ""),
    }
    for item in container.get("env") or []:
        if "name" in item:
            env[item["name"]] = translate(str(item.get("value", "")))
    return env


def parse_manifest(raw: bytes) -> dict:
    pod = yaml.safe_load(raw)
    if (
        not isinstance(pod, dict)
        or not isinstance(pod.get("spec"), dict)
        or not pod["spec"].get("containers")
    ):
        raise ValueError("not a pod with containers")
    pod.setdefault("metadata", {})
    return pod


class Kubelet:
    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.manifests: dict[str, tuple[str, dict | None]] = {}

    def new_container(self, pod_entry: dict, pod: dict, spec: dict, attempt: int) -> dict:
        name = spec["name"]
        cid = secrets.token_hex(32)
        image = str(spec.get("image", ""))
        record = {
            "id": cid,
            "pod_id": pod_entry["pod_id"],
            "pod_name": pod_entry["pod_name"],
            "namespace": pod_entry["namespace"],
            "pod_file": pod_entry["file"],
            "name": name,
            "image": image,
            "image_id": image.split("@sha256:")[-1]
            if "@sha256:" in image
            else hashlib.sha256(image.encode()).hexdigest(),
            "created": time.time(),
            "state": runtime.RUNNING,
            "attempt": attempt,
            "pid": None,
            "exit_code": None,
            "finished": None,
            "labels": {
                "io.kubernetes.container.name": name,
                "io.kubernetes.pod.name": pod_entry["pod_name"],
                "io.kubernetes.pod.namespace": pod_entry["namespace"],
                "io.kubernetes.pod.uid": pod_entry["uid"],
            },
            "exec_env": container_env(pod, spec),
            "log": os.path.join(runtime.LOG_DIR, f"{cid}.log"),
        }
        if name in REAL_CONTAINERS:
            translate = path_translator(pod, spec)
            argv = [translate(str(a)) for a in (spec.get("command") or []) + (spec.get("args") or [])]
            os.makedirs(runtime.LOG_DIR, exist_ok=True)
            with open(record["log"], "ab") as out:
                try:
                    process = subprocess.Popen(
                        argv,
                        env=record["exec_env"],
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd="/",
                        start_new_session=True,
                    )
                except OSError as error:
                    out.write(f"failed to start container {name}: {error}\n".encode())
                    runtime.mark_exited(record, 128)
                    return record
            self.processes[cid] = process
            record["pid"] = process.pid
        log.info(
            "started container %s (%s) of pod %s attempt %d", name, cid[:13], pod_entry["pod_name"], attempt
        )
        return record

    def stop_container(self, record: dict, exit_code: int = 0) -> None:
        if record["state"] != runtime.RUNNING:
            return
        code = exit_code
        if record.get("pid"):
            runtime.stop_process_group(record["pid"], STOP_GRACE)
            process = self.processes.pop(record["id"], None)
            if process is not None:
                code = process.wait()
        runtime.mark_exited(record, code)
        log.info("stopped container %s (%s)", record["name"], record["id"][:13])

    def read_manifests(self) -> dict[str, tuple[str, dict | None]]:
        found: dict[str, tuple[str, dict | None]] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.listdir(MANIFESTS)):
                path = os.path.join(MANIFESTS, entry)
                if entry.startswith(".") or not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as handle:
                        raw = handle.read()
                except OSError:
                    continue
                digest = hashlib.sha256(raw).hexdigest()
                cached = self.manifests.get(entry)
                if cached and cached[0] == digest:
                    found[entry] = cached
                    continue
                try:
                    found[entry] = (digest, parse_manifest(raw))
                except (yaml.YAMLError, ValueError) as error:
                    log.warning("could not read static pod manifest %s: %s", path, error)
                    found[entry] = (digest, None)
        self.manifests = found
        return found

    def tick(self) -> None:
        manifests = self.read_manifests()
        with runtime.locked_state() as state:
            self.reap(state)
            pods = state["pods"]
            for entry in [f for f in pods if f not in manifests or manifests[f][0] != pods[f]["digest"]]:
                self.remove_pod(state, entry)
            for entry, (digest, pod) in manifests.items():
                if pod is not None and entry not in pods:
                    self.add_pod(state, entry, digest, pod)
            now = time.time()
            for entry, pod_entry in pods.items():
                pod = manifests[entry][1]
                if pod is not None:
                    self.restart_exited(state, pod_entry, pod, now)
            self.prune(state)

    def reap(self, state: dict) -> None:
        for record in state["containers"]:
            if record["state"] != runtime.RUNNING or not record.get("pid"):
                continue
            process = self.processes.get(record["id"])
            if process is not None:
                code = process.poll()
                if code is not None:
                    self.processes.pop(record["id"])
                    runtime.mark_exited(record, code)
                    log.info("container %s (%s) exited with %d", record["name"], record["id"][:13], code)
            elif not runtime.alive(record["pid"]):
                # Adopted from a previous kubelet run: the exit code went to the host init, not to us.
                runtime.mark_exited(record, 255)

    def add_pod(self, state: dict, entry: str, digest: str, pod: dict) -> None:
        meta = pod["metadata"]
        pod_entry = {
            "file": entry,
            "digest": digest,
            "pod_id": secrets.token_hex(32),
            "uid": digest[:32],
            "pod_name": f"{meta.get('name', entry)}-{os.environ.get('TWIN_NODE_NAME', 'node')}",
            "namespace": meta.get("namespace", "default"),
            "restarts": {},
        }
        state["pods"][entry] = pod_entry
        for spec in pod["spec"]["containers"]:
            state["containers"].append(self.new_container(pod_entry, pod, spec, 0))

    def remove_pod(self, state: dict, entry: str) -> None:
        pod_id = state["pods"].pop(entry)["pod_id"]
        for record in state["containers"]:
            if record["pod_id"] == pod_id:
                self.stop_container(record)

    def restart_exited(self, state: dict, pod_entry: dict, pod: dict, now: float) -> None:
        """restartPolicy Always, with a short crash-loop back-off (real kubelet: 10 s doubling to 5 min)."""
        for spec in pod["spec"]["containers"]:
            mine = [
                c
                for c in state["containers"]
                if c["pod_id"] == pod_entry["pod_id"] and c["name"] == spec["name"]
            ]
            if not mine or any(c["state"] == runtime.RUNNING for c in mine):
                continue
            last = max(mine, key=lambda c: c["attempt"])
            restarts = pod_entry["restarts"].get(spec["name"], 0)
            ran_for = (last["finished"] or now) - last["created"]
            backoff = 0.0 if ran_for > 60 else min(0.5 * 2**restarts, MAX_BACKOFF)
            if now - (last["finished"] or now) < backoff:
                continue
            pod_entry["restarts"][spec["name"]] = restarts + 1
            state["containers"].append(self.new_container(pod_entry, pod, spec, last["attempt"] + 1))

    def prune(self, state: dict) -> None:
        exited = [c for c in state["containers"] if c["state"] != runtime.RUNNING]
        for record in sorted(exited, key=lambda c: c["finished"] or 0)[:-KEEP_EXITED]:
            state["containers"].remove(record)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(record["log"])


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s kubelet %(message)s")
    kubelet = Kubelet()
    stopping = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log.info("kubelet simulator watching %s", MANIFESTS)
    while not stopping:
        try:
            kubelet.tick()
        except Exception:
            log.exception("sync failed")
        time.sleep(POLL_SECONDS)
    # Like the real kubelet, leave containers running: the container runtime owns them.
    log.info("kubelet simulator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
