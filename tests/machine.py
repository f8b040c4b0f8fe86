"""What a test needs from the machine, and how it fails (never skips) when that is missing."""

from __future__ import annotations

import os

import pytest


def require_root(why: str) -> None:
    """Fail a test that needs root when it runs without it.

    CI runs as root; elsewhere, deselect such tests with ``-m "not root"`` (they carry the
    ``root`` marker, pyproject.toml).

    Args:
        why: what needs root, e.g. ``"mounting a tmpfs"``.
    """
    if os.geteuid() != 0:
        pytest.fail(
            f'{why} needs root: run as root (CI does) or deselect with -m "not root"', pytrace=False
        )
