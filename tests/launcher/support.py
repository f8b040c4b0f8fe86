"""Helpers for the launcher tests: run the real launcher and check its command."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED_CASES = REPO / "tests" / "data" / "launch-commands.yaml"
SERVING_CASES = REPO / "tests" / "data" / "serving-commands.yaml"
OUR_CASES = Path(__file__).with_name("cases.yaml")
PYTHON_WORDS = ("python", "python3")


def load_cases(path: Path) -> list[dict]:
    """Return the ``cases`` list of a launch-commands YAML file."""
    with path.open() as f:
        return yaml.safe_load(f)["cases"]


def clean_env(extra: dict | None = None) -> dict:
    """An environment with nothing but PATH, HOME and ``extra`` (as the YAML file says)."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def run_launcher(
    args: list[str], env: dict, python: str = sys.executable, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``python -m entrypoint ARGS`` from the repository root, capturing output."""
    return subprocess.run(
        [python, "-m", "entrypoint", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def command_of(stdout: str) -> list[str]:
    """The argv a dry run printed: its last stdout line, split as a shell would."""
    return shlex.split(stdout.rstrip("\n").splitlines()[-1])


def check_expect(argv: list[str], expect: dict) -> None:
    """Assert that ``argv`` meets a YAML case's ``expect`` (see launch-commands.yaml).

    Without ``program`` (serving-commands.yaml leaves it out), the engine's own: ``vllm
    serve``, or ``python3 -m sglang.launch_server``.
    """
    program = expect.get("program") or (
        ["vllm", "serve"]
        if argv[:2] == ["vllm", "serve"]
        else ["python3", "-m", "sglang.launch_server"]
    )
    head = argv[: len(program)]
    if program[0] == "python3":
        assert Path(head[0]).name.startswith(PYTHON_WORDS), argv
        assert head[1:] == program[1:], argv
    else:
        assert head == program, argv
    rest = argv[len(program) :]
    if program[-1] == "serve":  # vLLM's positional model
        assert rest[0] == expect.get("model", rest[0]), argv
        rest = rest[1:]
    values: dict[str, list] = {}
    i = 0
    while i < len(rest):
        token = rest[i]
        assert token.startswith("--"), f"stray positional {token!r} in {argv}"
        if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            values.setdefault(token, []).append(rest[i + 1])
            i += 2
        else:
            values.setdefault(token, []).append(True)
            i += 1
    for flag, want in (expect.get("flags") or {}).items():
        assert values.get(flag) == [want if want is True else str(want)], (
            f"{flag}: want {want!r}, got {values.get(flag)!r} in {argv}"
        )
    for flag, keys in (expect.get("json") or {}).items():
        assert len(values.get(flag, [])) == 1, f"{flag} missing or repeated in {argv}"
        parsed = json.loads(values[flag][0])
        assert isinstance(parsed, dict)
        for key, want in keys.items():
            assert parsed.get(key) == want, f"{flag}: {key}={parsed.get(key)!r}, want {want!r}"
    for flag in expect.get("absent") or []:
        assert flag not in values, f"{flag} must not appear in {argv}"
    for left, right in expect.get("same") or []:
        assert values.get(left) == values.get(right), f"{left} != {right} in {argv}"


def run_with_a_closed_descriptor(
    argv: list[str], closed: str, cwd: Path, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run ``argv`` with file descriptor ``closed`` (``"1"`` or ``"2"``) closed at start, as
    a shell's ``>&-`` leaves it (through bash, argv list), capturing the other stream."""
    return subprocess.run(
        ["bash", "-c", f'exec "$@" {closed}>&-', "bash", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE if closed == "2" else None,
        stderr=subprocess.PIPE if closed == "1" else None,
        text=True,
        timeout=timeout,
    )
