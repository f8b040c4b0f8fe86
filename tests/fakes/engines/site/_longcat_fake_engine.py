"""What both fake engines do once their parser accepted the command (tests only).

The images' tests cannot run SGLang or vLLM (no GPU), so the stand-in base carries fake
engines with the real engines' import paths, command lines and argument parsers. Once the
command is parsed, this module plays the running server:

- record the exact argv (``sys.orig_argv``: interpreter and ``-m module`` included) and
  the parsed options in ``$FAKE_ENGINE_DIR/argv.json`` (written atomically);
- start one worker process, as the real engines do (schedulers, engine cores), so the
  tests can see that SIGTERM reaches every process in the container;
- serve ``GET /health`` (200, or 503 while the file ``$FAKE_ENGINE_DIR/unhealthy``
  exists), ``/health_generate`` and, on nodes that serve the API, ``/v1/models``;
  HTTP listens on 127.0.0.1 only, whatever ``--host`` says, so test traffic stays on
  loopback (the health check probes 127.0.0.1 for a wildcard host anyway);
- on SIGTERM, record ``sigterm-<pid>.json`` (main process and worker) and exit 0.

``FAKE_ENGINE_EXIT=1`` records the argv and exits 0 at once, serving nothing.
``FAKE_ENGINE_ORPHANS=N`` leaves N orphans at start: processes whose parent exits at once,
so they are re-parented to PID 1, record ``orphan-<pid>.json`` and exit; only an init that
reaps (dumb-init) keeps them from staying zombies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Bounds, so that a fake never outlives its test by much.
WORKER_EXIT_TIMEOUT_S = 5.0


def state_dir() -> str:
    """The directory shared with the test (a bind mount), created if missing."""
    path = os.environ.get("FAKE_ENGINE_DIR", "/tmp/fake-engine")
    os.makedirs(path, exist_ok=True)
    return path


def write_json(name: str, payload: dict) -> None:
    """Write ``payload`` to ``state_dir()/name`` atomically (readers never see half)."""
    path = os.path.join(state_dir(), name)
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def record_argv(engine: str, parsed: dict) -> None:
    """Record how this process was started, and the options its parser produced."""
    write_json(
        "argv.json",
        {
            "engine": engine,
            "orig_argv": list(sys.orig_argv),
            "argv": list(sys.argv),
            "executable": sys.executable,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "pgid": os.getpgid(0),
            "parsed": {
                k: v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else repr(v)
                for k, v in parsed.items()
            },
            "env": {
                k: v
                for k, v in os.environ.items()
                if k
                in (
                    "ENGINE",
                    "HF_HOME",
                    "VLLM_ENGINE_READY_TIMEOUT_S",
                    "GLOO_SOCKET_IFNAME",
                    "NCCL_SOCKET_IFNAME",
                    "PATH",
                )
            },
        },
    )


def _sigterm_waiter(role: str) -> threading.Event:
    """Install a SIGTERM handler that records the signal and sets the returned event."""
    stop = threading.Event()

    def handler(signum, frame):
        write_json(
            f"sigterm-{os.getpid()}.json",
            {"pid": os.getpid(), "role": role, "signal": signum, "time": time.time()},
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    return stop


def _handler_class(model: str, serves_api: bool):
    unhealthy = os.path.join(state_dir(), "unhealthy")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path in ("/health", "/health_generate"):
                status = 503 if os.path.exists(unhealthy) else 200
                self._reply(status, {"status": "unhealthy" if status == 503 else "ok"})
            elif self.path == "/v1/models" and serves_api:
                self._reply(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
            else:
                self._reply(404, {"error": "not found"})

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # keep the container log readable
            pass

    return Handler


def _leave_orphans(count: int) -> None:
    """Fork ``count`` grandchildren whose parent exits at once (see the module doc)."""
    for _ in range(count):
        child = os.fork()
        if child == 0:  # the child: fork the orphan, then exit
            if os.fork() == 0:  # the orphan: wait for re-parenting, record
                while os.getppid() != 1:
                    time.sleep(0.01)
                write_json(f"orphan-{os.getpid()}.json", {"pid": os.getpid(), "ppid": 1})
                os._exit(0)
            os._exit(0)
        os.waitpid(child, 0)


def serve(engine: str, parsed: dict, *, port: int | None, model: str, serves_api: bool) -> int:
    """Play a running engine until SIGTERM. ``port=None``: serve no HTTP (headless).

    Returns:
        The exit status: 0 after SIGTERM.
    """
    stop = _sigterm_waiter("main")
    record_argv(engine, parsed)
    if os.environ.get("FAKE_ENGINE_EXIT", "") == "1":
        return 0
    _leave_orphans(int(os.environ.get("FAKE_ENGINE_ORPHANS", "0") or 0))
    worker = subprocess.Popen(
        [sys.executable, "-m", "_longcat_fake_engine", "worker"], stdout=subprocess.PIPE
    )
    worker.stdout.read(1)  # the worker handles SIGTERM from here on
    server = None
    if port is not None:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(model, serves_api))
        threading.Thread(target=server.serve_forever, daemon=True).start()
    write_json("ready.json", {"pid": os.getpid(), "worker_pid": worker.pid, "port": port})
    print(f"fake {engine}: serving{'' if port is None else f' on 127.0.0.1:{port}'}", flush=True)
    stop.wait()
    if server is not None:
        server.shutdown()
    try:  # the worker got the same SIGTERM from the init (process group)
        worker.wait(timeout=WORKER_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
    return 0


def worker() -> int:
    """A worker process: say it is ready (one byte on stdout), wait for SIGTERM, record it,
    exit 0."""
    stop = _sigterm_waiter("worker")
    sys.stdout.write("r")
    sys.stdout.flush()
    stop.wait()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        raise SystemExit(worker())
    raise SystemExit(f"usage: python -m _longcat_fake_engine worker (got {sys.argv[1:]})")
