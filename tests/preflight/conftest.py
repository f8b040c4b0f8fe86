"""Fixtures for the preflight tests."""

from __future__ import annotations

import subprocess

import pytest

from tests.machine import require_root


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a real tmpfs of a given size: ``tmpfs("64m")`` returns its path. Needs root (CI)."""
    require_root("mounting a tmpfs")
    mounted = []

    def mount(size: str, options: str = ""):
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        opts = f"size={size}" + (f",{options}" if options else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=True)
