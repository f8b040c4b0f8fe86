"""Health of this node, as the images' HEALTHCHECK sees it (``python -m entrypoint health``).

The check follows the node's role from the same plan the launcher used (docs/engines.md,
"Node roles"):
- nodes that serve HTTP (every SGLang node, vLLM node 0) must answer ``GET /health``
  with 200 on ``PORT``; SGLang answers 503 while loading, vLLM once its engine died;
- a vLLM headless node serves no HTTP, so its engine process must be running: the one
  the launcher became (the launcher records its process ID before the exec, and the exec
  keeps it), not any ``vllm serve`` another container or job runs on the same host.

Every check ends within ``HTTP_TIMEOUT_S`` in total, whatever the server sends, and never
raises: an answer that is not HTTP is an unhealthy node, not a traceback.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .plan import Plan

# The whole probe's deadline, in seconds: connecting, sending and reading the status line.
# A probe that hangs is a failed probe; Docker's own timeout is the backstop.
HTTP_TIMEOUT_S = 10.0
# How much of an answer the probe reads, at most, looking for the status line.
_MAX_STATUS_LINE = 8192
# The engine process's ID, recorded by the launcher just before it execs the engine.
PID_FILE_NAME = "longcat-deploy-engine.pid"
HEADLESS_MARKER = "vllm serve --headless"


def _probe_host(host: str) -> str:
    """Where to reach a server bound to ``host``: loopback for the wildcard addresses."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def http_health(host: str, port: int, timeout_s: float = HTTP_TIMEOUT_S) -> tuple[bool, str]:
    """GET ``/health`` on ``host:port`` within ``timeout_s`` seconds in all; healthy on 200.

    Plain sockets, with the remaining time set before every operation: a server that
    trickles one byte a second cannot stretch the probe past its deadline.

    Returns:
        (healthy, one-line reason).
    """
    import socket
    import time

    target = _probe_host(host)
    url = f"http://{'[' + target + ']' if ':' in target else target}:{port}/health"
    deadline = time.monotonic() + timeout_s

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {timeout_s:g} s")
        return left

    answer = b""
    try:
        with socket.create_connection((target, port), timeout=remaining()) as sock:
            sock.settimeout(remaining())
            sock.sendall(
                f"GET /health HTTP/1.1\r\nHost: {target}:{port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            while b"\r\n" not in answer and len(answer) < _MAX_STATUS_LINE:
                sock.settimeout(remaining())
                chunk = sock.recv(1024)
                if not chunk:
                    break
                answer += chunk
    except TimeoutError:  # socket.timeout, or the deadline passed between two reads
        return False, f"GET {url} failed: no answer within {timeout_s:g} s"
    except OSError as exc:  # refused, unreachable, reset
        return False, f"GET {url} failed: {exc}"
    words = answer.split(b"\r\n", 1)[0].split(None, 2)
    if (
        len(words) < 2
        or not words[0].startswith(b"HTTP/")
        or not (words[1].isdigit() and len(words[1]) == 3)
    ):
        from .output import redact

        # Redacted before the cut, which could split a credential the redaction then
        # misses (entrypoint.errors.shorten).
        shown = redact(answer.decode("ascii", "backslashreplace"))[:60]
        return False, f"GET {url} answered something that is not HTTP: {shown!r}"
    status = int(words[1])
    return status == 200, f"GET {url} answered {status}"


def pid_file(env: Mapping[str, str]) -> str:
    """Where the launcher records the engine's process ID: ``$TMPDIR`` (or ``/tmp``).

    Inside a container that folder is the container's own, so a health check run there
    (``docker exec``) reads the record of that container's engine only.
    """
    return os.path.join(env.get("TMPDIR") or "/tmp", PID_FILE_NAME)


def record_engine_pid(path: str) -> None:
    """Write this process's ID to ``path``; the exec that follows keeps the ID.

    Written to a new file beside it, then renamed over ``path``: whatever stood there is
    replaced, never written through. ``/tmp`` is shared on a workstation, and another user
    may have put a link there (to a file of ours) or a FIFO (an open would wait on it).

    Raises:
        OSError: the folder cannot be written, or a directory stands at ``path``.
    """
    temporary = f"{path}.{os.getpid()}.new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    try:
        os.replace(temporary, path)
    except OSError:
        os.unlink(temporary)
        raise


def engine_process(path: str, marker: str = HEADLESS_MARKER, proc: str = "/proc") -> int | None:
    """The recorded engine process, if it is alive (not a zombie) and runs ``marker``.

    Args:
        path: the record (``pid_file``).
        marker: space-separated words that must all appear in the process's argv, as whole
            entries or as the last path component of one (``"vllm serve --headless"``).
        proc: the procfs mount.

    Returns:
        The process ID, or ``None`` when there is no record or that process is gone, a
        zombie, or something else.
    """
    from .transfer import NotAFile, read_small_file

    try:
        found = read_small_file(path, 64)  # a FIFO or /dev/zero there is no record
        if found is None:
            return None
        pid = int(found[1].strip())
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
        with open(f"{proc}/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError, NotAFile):
        return None
    names = set(argv) | {a.rsplit("/", 1)[-1] for a in argv}
    if state == "Z" or not all(word in names for word in marker.split()):
        return None
    return pid


def node_health(plan: Plan, env: Mapping[str, str]) -> tuple[bool, str]:
    """Check this node according to its role in ``plan``.

    Args:
        plan: this node's plan.
        env: the environment (``TMPDIR``, for the engine's process record).

    Returns:
        (healthy, one-line reason).
    """
    if plan.serves_http:
        return http_health(plan.host, plan.port)
    path = pid_file(env)
    pid = engine_process(path)
    if pid is not None:
        return True, f"headless vLLM node: its engine '{HEADLESS_MARKER}' is running (pid {pid})"
    return False, (
        f"headless vLLM node: the engine recorded in {path} is not running "
        f"'{HEADLESS_MARKER}' (it exited, or was never started)"
    )


def run_health(env: Mapping[str, str]) -> int:
    """``python -m entrypoint health``: 0 when this node is healthy, 1 otherwise.

    Resolves the same plan the launcher did from ``env`` and prints the one-line reason.

    Raises:
        ConfigError: ``env`` is invalid (exit status 2).
    """
    from .plan import resolve_plan
    from .settings import load_settings

    healthy, reason = node_health(resolve_plan(load_settings(env)), env)
    from .output import say

    say(reason)
    return 0 if healthy else 1
