"""Static checks of the Dockerfile and .dockerignore (no Docker engine is needed to run them).

They parse the instructions and hold them to what the image promises: a slim, non-root image built
from the lock file, with every package the distribution declares, and the port the chart probes.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    pairs = []
    for line in joined:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions():
        if keyword == "FROM":
            result.append([])
        assert result, f"{keyword} before the first FROM"
        result[-1].append((keyword, arguments))
    return result


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern that matches decides; `!` re-includes."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            excluded = not negate
    return excluded


def test_both_stages_use_the_slim_python_of_the_project() -> None:
    bases = [stage[0][1] for stage in stages()]
    assert len(bases) == 2
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*(\d+\.\d+)", requires)
    assert minimum, requires
    for base in bases:
        image = base.split()[0]
        assert re.fullmatch(r"python:3\.\d+-slim", image), f"{image} is not a python:*-slim image"
        assert tuple(map(int, image[7:].split("-")[0].split("."))) >= tuple(map(int, minimum[1].split(".")))


def test_builder_installs_from_the_lock_without_dev_dependencies() -> None:
    builder = stages()[0]
    runs = [arguments for keyword, arguments in builder if keyword == "RUN"]
    assert any(re.search(r"pip install .*\buv==\d+\.\d+\.\d+", run) for run in runs), "uv must be pinned"
    syncs = [run for run in runs if run.startswith("uv sync")]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync.split() and "--no-dev" in sync.split(), sync
    # The last sync installs drbot itself as a real package: the runtime stage has no source tree.
    assert "--no-editable" in syncs[-1].split()
    copied = " ".join(arguments for keyword, arguments in builder if keyword == "COPY")
    assert "uv.lock" in copied and "pyproject.toml" in copied


def test_every_declared_package_is_copied_and_nothing_else() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    declared = {pattern.rstrip("*") for pattern in include}
    copied_sources = {
        source for keyword, arguments in stages()[0] if keyword == "COPY" for source in arguments.split()[:-1]
    }
    packages = {source for source in copied_sources if (ROOT / source).is_dir()}
    assert packages == declared
    for source in copied_sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignore_excludes(source), f"COPY {source}: .dockerignore keeps it out of the context"
    for kept_out in ("tests", "bench", "helm", ".venv", ".git", "bench/results.json"):
        assert dockerignore_excludes(kept_out), f"{kept_out} must not reach the build context"


def test_runtime_runs_drbot_as_a_numeric_non_root_user() -> None:
    runtime = stages()[-1]
    keywords = [keyword for keyword, _ in runtime]
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == 10001 and gid == uid
    # Nothing may run as root after the switch.
    assert "RUN" not in keywords[keywords.index("USER") :]
    copies = [arguments for keyword, arguments in runtime if keyword == "COPY"]
    assert copies == ["--from=builder /app/.venv /app/.venv"]
    assert any("openssh-client" in arguments for keyword, arguments in runtime if keyword == "RUN")


def test_entrypoint_is_the_console_script_and_serves_on_the_chart_port() -> None:
    runtime = dict(stages()[-1])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = json.loads(runtime["ENTRYPOINT"])
    assert entrypoint == ["drbot"] and "drbot" in scripts
    command = json.loads(runtime["CMD"])
    assert command[0] == "serve"
    values = yaml.safe_load((ROOT / "helm" / "drbot" / "values.yaml").read_text())
    port = values["bot"]["port"]
    assert runtime["EXPOSE"] == str(port)
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "/app/.venv/bin" in runtime["ENV"]


@pytest.mark.parametrize("secret_like", [".env", "id_ed25519", "kubeconfig", "tests/e2e/x.py"])
def test_local_secrets_and_tests_stay_out_of_the_build_context(secret_like: str) -> None:
    assert dockerignore_excludes(secret_like)
