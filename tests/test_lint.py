"""Lint, format and types, as part of the test run (so .ci/run and the fast loop both
enforce them): ruff's rule set and formatter as pyproject.toml configures them, on the whole
tree, and mypy --strict on the launcher."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What ruff checks and formats: the whole tree ([tool.ruff] in pyproject.toml excludes
# the copied data under tests/data).
LINTED = ["."]


def tool(name: str) -> str:
    """The console script ``name`` installed beside this interpreter (pip install -e '.[test]')."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        pytest.fail(f"{name} is missing: pip install -e '.[test]'", pytrace=False)
    return str(path)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    done = run([tool("ruff"), "check", *LINTED])
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_changes_nothing():
    done = run([tool("ruff"), "format", "--check", *LINTED])
    assert done.returncode == 0, "run `ruff format .`:\n" + done.stdout + done.stderr


def test_mypy_strict_on_the_launcher():
    done = run([sys.executable, "-m", "mypy"])  # files and options: [tool.mypy]
    assert done.returncode == 0, done.stdout + done.stderr
