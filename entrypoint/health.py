"""Health of this node, as the images' HEALTHCHECK sees it (``python -m entrypoint health``).

The check follows the node's role from the same plan the launcher used (docs/engines.md,
"Node roles"):
- nodes that serve HTTP (every SGLang node, vLLM node 0) must answer ``GET /health``
  with 200 on ``PORT``; SGLang answers 503 while loading, vLLM once its engine died;
- a vLLM headless node serves no HTTP, so its ``vllm serve`` process must be running.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .plan import Plan

# A health probe that hangs is a failed probe; Docker's own timeout is the backstop.
HTTP_TIMEOUT_S = 10.0


def _probe_host(host: str) -> str:
    """Where to reach a server bound to ``host``: loopback for the wildcard addresses."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def http_health(host: str, port: int, timeout_s: float = HTTP_TIMEOUT_S) -> tuple[bool, str]:
    """GET ``/health`` on ``host:port``; healthy on status 200.

    Returns:
        (healthy, one-line reason).
    """
    import http.client

    target = _probe_host(host)
    conn = http.client.HTTPConnection(target, port, timeout=timeout_s)
    try:
        conn.request("GET", "/health")
        status = conn.getresponse().status
    except OSError as exc:
        return False, f"GET http://{target}:{port}/health failed: {exc}"
    finally:
        conn.close()
    return status == 200, f"GET http://{target}:{port}/health answered {status}"


def engine_processes(marker: str, proc: str = "/proc") -> list[int]:
    """Return the IDs of live (not zombie) processes whose argv contains ``marker`` words.

    Args:
        marker: space-separated words that must all appear as whole argv entries or as
            the last path component of one (``"vllm serve --headless"``).
        proc: the procfs mount.
    """
    words = marker.split()
    found = []
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"{proc}/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
            with open(f"{proc}/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        names = set(argv) | {a.rsplit("/", 1)[-1] for a in argv}
        if state != "Z" and all(w in names for w in words):
            found.append(int(entry))
    return found


def node_health(plan: Plan) -> tuple[bool, str]:
    """Check this node according to its role in ``plan``.

    Returns:
        (healthy, one-line reason).
    """
    if plan.serves_http:
        return http_health(plan.host, plan.port)
    pids = engine_processes("vllm serve --headless")
    if pids:
        return True, f"headless vLLM node: 'vllm serve --headless' is running (pid {pids[0]})"
    return False, "headless vLLM node: no 'vllm serve --headless' process is running"


def run_health(env: Mapping[str, str]) -> int:
    """``python -m entrypoint health``: 0 when this node is healthy, 1 otherwise.

    Resolves the same plan the launcher did from ``env`` and prints the one-line reason.

    Raises:
        ConfigError: ``env`` is invalid (exit status 2).
    """
    from .plan import resolve_plan
    from .settings import load_settings

    healthy, reason = node_health(resolve_plan(load_settings(env)))
    from .output import say

    say(reason)
    return 0 if healthy else 1
