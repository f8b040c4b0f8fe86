"""Helpers for the preflight tests."""

from __future__ import annotations

import socket

from entrypoint.plan import resolve_plan
from entrypoint.settings import load_settings


def plan_for(**env):
    """This node's plan for ``env`` (ENGINE defaults to sglang), as the launcher makes it."""
    env.setdefault("ENGINE", "sglang")
    return resolve_plan(load_settings({k: str(v) for k, v in env.items()}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
