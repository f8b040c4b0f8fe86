"""Run ``docker compose`` on the shipped files with an explicit, clean environment.

Every call builds its environment from scratch (``PATH``, ``HOME`` and the Docker client's
own variables, plus what the test passes), passes ``--env-file`` with an empty file, and
runs on a fresh copy of the shipped compose files (``common.yaml`` reads ``compose/.env``
as the service's ``env_file``), so neither the developer's shell nor a ``compose/.env``
left in the checkout changes what the tests see. A test that means to give a
``compose/.env`` passes its text as ``dotenv``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
SINGLE = COMPOSE_DIR / "single-node.yaml"
TWO = COMPOSE_DIR / "two-node.yaml"
COMMON = COMPOSE_DIR / "common.yaml"
RDMA = COMPOSE_DIR / "rdma.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
SERVICE = "longcat"
# The test-only override: no GPU reservation, fast health probes, the fake engines' state.
OVERRIDE = Path(__file__).resolve().parent / "override.yaml"

# Host variables the docker CLI and compose need to find the daemon and their plugins.
_KEPT = (
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "XDG_RUNTIME_DIR",
)
# Bounds for one compose command: `config` answers in well under a second, `up --wait`
# for the fake engines in seconds; these only stop a hung command from hanging the suite.
CONFIG_TIMEOUT_S = 60
UP_TIMEOUT_S = 300


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a compose command: the kept host variables plus ``extra``."""
    env = {name: os.environ[name] for name in _KEPT if name in os.environ}
    env.setdefault("HOME", str(Path.home()))  # the compose files' default cache is under it
    env.update(extra or {})
    return env


def compose_argv(
    files, *args: str, project: str | None = None, env_file: Path | str = os.devnull
) -> list[str]:
    """``docker compose --env-file ... -f FILE ... [-p PROJECT] ARGS``."""
    argv = ["docker", "compose", "--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(f)]
    if project:
        argv += ["-p", project]
    return argv + list(args)


def run_compose(
    files,
    *args: str,
    env: dict[str, str] | None = None,
    project: str | None = None,
    timeout: float = CONFIG_TIMEOUT_S,
    check: bool = True,
    env_file: Path | str = os.devnull,
    dotenv: str | None = None,
) -> subprocess.CompletedProcess:
    """Run one compose command in the repository root; return the completed process.

    The shipped files among ``files`` (those in ``compose/``) are used from a fresh copy of
    the folder, with no ``.env`` in it unless ``dotenv`` gives its text (which then also
    feeds interpolation, unless ``env_file`` names another file).

    Raises:
        AssertionError: ``check`` and a non-zero exit, with compose's output in the message.
    """
    with tempfile.TemporaryDirectory(prefix="longcat-compose-") as tmp:
        copy = Path(tmp) / "compose"
        copy.mkdir()
        for shipped in COMPOSE_DIR.glob("*.yaml"):
            shutil.copy(shipped, copy / shipped.name)
        if dotenv is not None:
            # As for a user: compose/.env feeds interpolation and the service alike.
            (copy / ".env").write_text(dotenv)
            if env_file == os.devnull:
                env_file = copy / ".env"
        files = [
            copy / Path(f).name if Path(f).resolve().parent == COMPOSE_DIR else f for f in files
        ]
        argv = compose_argv(files, *args, project=project, env_file=env_file)
        result = subprocess.run(
            argv,
            cwd=ROOT,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def config(files, env: dict[str, str] | None = None, dotenv: str | None = None) -> dict:
    """``docker compose config`` of ``files`` under ``env`` (and ``dotenv``), parsed."""
    return yaml.safe_load(run_compose(files, "config", env=env, dotenv=dotenv).stdout)


def config_variables(files) -> dict:
    """``docker compose config --variables``: every interpolated variable and its default."""
    import json

    return json.loads(run_compose(files, "config", "--variables", "--format", "json").stdout)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def seconds(duration) -> float:
    """Seconds in a compose duration (``"1h0m0s"``, ``"2m"``, ``"500ms"``) or a number."""
    if isinstance(duration, (int, float)):
        return float(duration)
    text = str(duration).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {duration!r}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def ulimit(value) -> tuple[int, int]:
    """A compose ulimit (one number, or ``{soft, hard}``) as ``(soft, hard)``."""
    if isinstance(value, dict):
        return int(value["soft"]), int(value["hard"])
    return int(value), int(value)


def probe_memlock(client, image: str, token: str) -> int:
    """The memlock limit to ask for in the override: the shipped -1 where the daemon can
    grant it, else the daemon's own hard limit (a dockerd without CAP_SYS_RESOURCE, as in
    our sandboxed test machines, cannot raise RLIMIT_MEMLOCK for a container).

    Args:
        client: a docker.DockerClient.
        image: any local image with python3 (the stand-in base).
        token: the test session's label value for the probe containers.
    """
    import docker.errors
    from docker.types import Ulimit

    from tests.images.dockerutil import TEST_LABEL

    probe = [
        "python3",
        "-c",
        "import resource; print(resource.getrlimit(resource.RLIMIT_MEMLOCK)[1])",
    ]

    def hard_limit(**kwargs) -> int | None:
        """Run the probe; None when the daemon cannot start it with these limits."""
        # create, then start: a start that fails still leaves a container to remove.
        c = client.containers.create(
            image, probe, network_mode="host", labels={TEST_LABEL: token}, **kwargs
        )
        try:
            try:
                c.start()
            except docker.errors.APIError as exc:
                if "rlimit" not in str(exc):
                    raise
                return None
            status = c.wait(timeout=60)["StatusCode"]
            out = c.logs(stdout=True, stderr=False).decode()
            assert status == 0, c.logs().decode()
            return int(out.strip())
        finally:
            c.remove(force=True)

    if hard_limit(ulimits=[Ulimit(name="memlock", soft=-1, hard=-1)]) is not None:
        return -1
    return hard_limit()


def override_env(state_dir: Path, token: str, memlock: int) -> dict[str, str]:
    """The variables tests/compose/override.yaml requires, plus what the fake engines need:
    no checkpoint download (``DOWNLOAD=0``) and no host checks (``PREFLIGHT=off``)."""
    return {
        "DOWNLOAD": "0",
        "PREFLIGHT": "off",
        "LONGCAT_TEST_STATE_DIR": str(state_dir),
        "LONGCAT_TEST_TOKEN": token,
        "LONGCAT_TEST_MEMLOCK": str(memlock),
    }
