"""Run the real launcher's dry run and read back the command it would exec.

Shared by the Kubernetes and Slurm tests: both hand the launcher the environment a
platform gives one node, and check the rank, leader and node count it resolves.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def base_env() -> dict[str, str]:
    """A clean environment: PATH and HOME only, as a container would start with."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
    }


def dry_run(env: dict[str, str]) -> tuple[str, list[str]]:
    """Run ``python -m entrypoint --dry-run`` from the repository with exactly ``env``.

    Returns:
        (stdout, the command's argv, parsed from the last line of stdout).
    """
    proc = subprocess.run(
        [sys.executable, "-m", "entrypoint", "--dry-run"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"dry run failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout, command_of(proc.stdout)


def command_of(stdout: str) -> list[str]:
    """The command a dry run prints as its last line, split the way a shell would."""
    return shlex.split(stdout.strip().splitlines()[-1])


def flag(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in ``argv`` (it must appear at most once), or None."""
    positions = [i for i, arg in enumerate(argv) if arg == name]
    assert len(positions) <= 1, f"{name} appears {len(positions)} times in {argv}"
    if not positions or positions[0] + 1 >= len(argv):
        return None
    return argv[positions[0] + 1]


def plan_row(stdout: str, variable: str) -> str:
    """The line of the dry run's plan table for ``variable`` (its value and its source)."""
    for line in stdout.splitlines():
        words = line.split()
        if words[:1] == [variable]:
            return line
    raise AssertionError(f"no {variable} row in the plan:\n{stdout}")
