"""Run ``docker compose`` on the shipped files with an explicit, clean environment.

Every call builds its environment from scratch (``PATH``, ``HOME`` and the Docker client's
own variables, plus what the test passes), and passes ``--env-file`` with an empty file, so
neither the developer's shell nor a ``compose/.env`` left in the checkout changes what the
tests see.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
SINGLE = COMPOSE_DIR / "single-node.yaml"
TWO = COMPOSE_DIR / "two-node.yaml"
COMMON = COMPOSE_DIR / "common.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
SERVICE = "longcat"

# Host variables the docker CLI and compose need to find the daemon and their plugins.
_KEPT = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH",
         "DOCKER_TLS_VERIFY", "XDG_RUNTIME_DIR")
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


def compose_argv(files, *args: str, project: str | None = None,
                 env_file: Path | str = os.devnull) -> list[str]:
    """``docker compose --env-file ... -f FILE ... [-p PROJECT] ARGS``."""
    argv = ["docker", "compose", "--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(f)]
    if project:
        argv += ["-p", project]
    return argv + list(args)


def run_compose(files, *args: str, env: dict[str, str] | None = None,
                project: str | None = None, timeout: float = CONFIG_TIMEOUT_S,
                check: bool = True, env_file: Path | str = os.devnull
                ) -> subprocess.CompletedProcess:
    """Run one compose command in the repository root; return the completed process.

    Raises:
        AssertionError: ``check`` and a non-zero exit, with compose's output in the message.
    """
    argv = compose_argv(files, *args, project=project, env_file=env_file)
    result = subprocess.run(argv, cwd=ROOT, env=clean_env(env), capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def config(files, env: dict[str, str] | None = None) -> dict:
    """``docker compose config`` of ``files`` under ``env``, parsed with PyYAML."""
    return yaml.safe_load(run_compose(files, "config", env=env).stdout)


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
