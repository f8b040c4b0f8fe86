"""Run the real engine through our launcher: start, wait for health, ask, stop.

Shared by the launcher tests, the README's demo and the time-to-healthy benchmark.
Everything listens on and talks to 127.0.0.1; every wait polls with a deadline.

A node is ``python -m entrypoint`` (the interpreter running this code, i.e. our project's
environment) with ``ENGINE=vllm`` and ``MODEL`` the tiny checkpoint; ``vllm`` is found on
``PATH`` in the real-engine environment, as in the images, where the launcher and the
engine share ``python3``. The launcher execs ``vllm serve``, so the process started here
becomes the engine (same PID): SIGTERM goes straight to it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Engine flags, through EXTRA_ARGS (they come after the launcher's own):
# --enforce-eager: no torch.compile on CPU (minutes on 2 cores, and nothing to gain here);
# --max-model-len 512: the tiny model's context, so the CPU KV cache stays small;
# --dtype float32: vLLM would downcast the float32 checkpoint to bfloat16 on CPU; in float32
#   the served log-probabilities equal transformers' to rounding (see LOGPROB_TOLERANCE).
MAX_MODEL_LEN = 512
ENGINE_FLAGS = f"--enforce-eager --max-model-len {MAX_MODEL_LEN} --dtype float32"
# The same without --max-model-len, for a launcher that sets it itself (CONTEXT_LENGTH).
ENGINE_FLAGS_WITHOUT_LENGTH = "--enforce-eager --dtype float32"
# Served vs reference log-probabilities, float32 on both sides: about 2e-5 apart when the
# served model computes what transformers computes; a real difference (the CPU rotary gap
# in tests/real_engine/plugin) put them 2e-3 to 2e-2 apart.
LOGPROB_TOLERANCE = 1e-3
# The engine's exit after SIGTERM, seconds, when it drains nothing (SHUTDOWN_TIMEOUT_S=0):
# the signal reaches vLLM (the launcher exec'd it) and it stops at once.
STOP_WITHIN_S = 10.0
# The same for an idle node with the shipped drain (SHUTDOWN_TIMEOUT_S=120, vLLM
# --shutdown-timeout): vLLM then gives its engine processes a window to exit before it
# signals them (vllm/v1/engine/utils.py, get_engine_process_shutdown_timeout; the API
# server's shutdown in vllm/entrypoints/cli/serve.py); measured 8 to 14 s on these 2 cores.
DRAIN_STOP_WITHIN_S = 30.0
# Start to healthy: about 20 s (one node) and 30 s (two nodes) on an idle 2-core machine,
# minutes on a busy one; the first start after install also compiles vLLM's modules.
HEALTHY_WITHIN_S = 600.0
EXEC_LINE = "longcat-deploy: exec "
# What every real-engine node runs with, on the host and in containers:
# VLLM_CPU_KVCACHE_SPACE=1: 1 GiB of KV cache (the default takes a fraction of RAM);
# VLLM_HOST_IP=127.0.0.1: vLLM's message queues otherwise advertise the host's external
#   address;
# HF_HUB_OFFLINE=1: the checkpoint is local, nothing may look at the Hub;
# TORCHDYNAMO_DISABLE=1: a logprobs request makes vLLM's sampler torch.compile a helper
#   (vllm/v1/sample/sampler.py, batched_count_greater_than), which on CPU needs a C++
#   compiler: the images have none ("InvalidCxxCompiler"), and on the host it costs a
#   compile at the first request; --enforce-eager does not cover it;
# usage statistics off.
ENGINE_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "HF_HUB_OFFLINE": "1",
    "TORCHDYNAMO_DISABLE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def engine_environment(venv_bin: Path, base: dict | None = None) -> dict[str, str]:
    """The variables a real-engine node on this host runs with: ``base`` (os.environ) plus
    ``ENGINE_ENV``, and ``venv_bin`` (the real-engine environment's ``bin``) first on PATH,
    so the launcher finds that ``vllm``."""
    env = dict(os.environ if base is None else base)
    env.update(ENGINE_ENV)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def launcher_variables(
    model: Path,
    port: int,
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_port: int | None = None,
    shutdown_timeout_s: int | None = None,
) -> dict[str, str]:
    """Our launcher's variables for one node of the tiny deployment.

    ``PREFLIGHT=warn``: the host checks run for real (ports, ``MASTER_IP``, and node 1's
    wait for node 0), but there is no GPU here, so their failure is reported and the
    launch goes on. ``MASTER_IP=127.0.0.1`` on a two-node plan: both nodes are on this host.
    ``shutdown_timeout_s``: ``SHUTDOWN_TIMEOUT_S``, the shipped default when ``None``.
    """
    variables = {
        "ENGINE": "vllm",
        "MODEL": str(model),
        "GPUS_PER_NODE": "1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PREFLIGHT": "warn",
        "EXTRA_ARGS": ENGINE_FLAGS,
        "NNODES": str(nnodes),
        "NODE_RANK": str(node_rank),
    }
    if shutdown_timeout_s is not None:
        variables["SHUTDOWN_TIMEOUT_S"] = str(shutdown_timeout_s)
    if nnodes > 1:
        variables.update(
            {
                "MASTER_IP": "127.0.0.1",
                "MASTER_PORT": str(master_port),
                # Each node's OpenMP threads on a core of its own (2 cores here).
                "VLLM_CPU_OMP_THREADS_BIND": str(node_rank % (os.cpu_count() or 1)),
            }
        )
    return variables


@dataclass
class Node:
    """One launcher process that became ``vllm serve``.

    Attributes:
        name: for messages (``"node 0"``).
        port: its HTTP port (node 0; a headless node serves no HTTP).
        process: the process (the launcher, then the engine: same PID).
        log: its stdout and stderr, written to this file.
        started: ``time.monotonic()`` when it was started.
        exec_at: ``time.monotonic()`` when the launcher printed its exec line, or None.
    """

    name: str
    port: int
    process: subprocess.Popen
    log: Path
    started: float
    exec_at: float | None = None
    _reader: threading.Thread | None = field(default=None, repr=False)

    def launcher_lines(self) -> list[str]:
        """What the launcher printed before it became the engine: its lines up to and
        including the exec line (all of them, if it has not exec'd)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        lines = []
        for line in text.splitlines():
            lines.append(line)
            if line.startswith(EXEC_LINE):
                break
        return lines

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_node(
    name: str, env: dict[str, str], port: int, log: Path, python: str = sys.executable
) -> Node:
    """Start ``python -m entrypoint`` from the repository root in a session of its own.

    A thread copies its output to ``log`` and notes when the exec line appears (the
    launcher's share of the start, ``Node.exec_at``).
    """
    started = time.monotonic()
    process = subprocess.Popen(
        [python, "-m", "entrypoint"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    node = Node(name, port, process, log, started)

    def copy() -> None:
        with open(log, "wb") as out:
            for line in process.stdout:
                if node.exec_at is None and line.startswith(EXEC_LINE.encode()):
                    node.exec_at = time.monotonic()
                out.write(line)
                out.flush()

    node._reader = threading.Thread(target=copy, daemon=True)
    node._reader.start()
    return node


def http_json(
    port: int,
    method: str,
    path: str,
    body: dict | None = None,
    timeout_s: float = 120.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict | str]:
    """One HTTP request to 127.0.0.1:``port``, with ``headers`` added (an
    ``Authorization`` header, for example); returns (status, JSON body or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
    finally:
        conn.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def health_status(port: int) -> int | None:
    """``GET /health``'s status, or None when nothing answers."""
    try:
        return http_json(port, "GET", "/health", timeout_s=5)[0]
    except OSError:
        return None


def wait_healthy(node: Node, timeout_s: float = HEALTHY_WITHIN_S, interval_s: float = 0.1) -> float:
    """Poll ``GET /health`` on the node until it answers 200.

    Returns:
        Seconds from the node's start to its first 200.

    Raises:
        RuntimeError: the process exited, or ``timeout_s`` passed (with its log's tail).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if health_status(node.port) == 200:
            return time.monotonic() - node.started
        if node.process.poll() is not None:
            raise RuntimeError(
                f"{node.name} exited with status {node.process.returncode} "
                f"before it was healthy; its log:\n{node.log_tail()}"
            )
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{node.name} was not healthy within {timeout_s:.0f} s; its log:\n{node.log_tail()}"
            )
        time.sleep(interval_s)


def wait_exec(node: Node, timeout_s: float = 60.0, interval_s: float = 0.05) -> float:
    """Wait until the node's launcher has printed its exec line; return seconds from start.

    Raises:
        RuntimeError: the launcher exited first, or ``timeout_s`` passed.
    """
    deadline = time.monotonic() + timeout_s
    while node.exec_at is None:
        if node.process.poll() is not None or time.monotonic() >= deadline:
            raise RuntimeError(
                f"{node.name}: the launcher did not exec the engine "
                f"(status {node.process.poll()}); its log:\n{node.log_tail()}"
            )
        time.sleep(interval_s)
    return node.exec_at - node.started


def chat_request(reference: dict) -> dict:
    """The reference's chat request: greedy, its length, with token ids and log-probs
    (``return_token_ids`` is vLLM's extension of the OpenAI API)."""
    return {
        "messages": reference["messages"],
        "max_tokens": reference["max_tokens"],
        "temperature": 0,
        "logprobs": True,
        "return_token_ids": True,
    }


def ask(port: int, reference: dict) -> tuple[int, dict | str]:
    """Send the reference's chat request to the model the server lists first.

    Returns:
        (HTTP status, the response's JSON, or its text when it is not JSON).
    """
    status, models = http_json(port, "GET", "/v1/models")
    if status != 200:
        return status, models
    body = dict(chat_request(reference), model=models["data"][0]["id"])
    return http_json(port, "POST", "/v1/chat/completions", body)


def answer_problems(
    response: dict, reference: dict, tolerance: float = LOGPROB_TOLERANCE
) -> list[str]:
    """How a chat completion differs from the reference (empty: it is the reference's).

    Checks the object type, the prompt's and the completion's token ids, and each
    generated token's log-probability within ``tolerance``.
    """
    problems = []
    if response.get("object") != "chat.completion":
        problems.append(f"object is {response.get('object')!r}, not 'chat.completion'")
    if response.get("prompt_token_ids") != reference["prompt_token_ids"]:
        problems.append(
            f"prompt token ids {response.get('prompt_token_ids')} != the "
            f"reference's {reference['prompt_token_ids']}"
        )
    choice = (response.get("choices") or [{}])[0]
    if choice.get("token_ids") != reference["completion_token_ids"]:
        problems.append(
            f"completion token ids {choice.get('token_ids')} != the "
            f"reference's {reference['completion_token_ids']}"
        )
        return problems
    served = [entry["logprob"] for entry in (choice.get("logprobs") or {}).get("content", [])]
    gaps = [abs(a - b) for a, b in zip(served, reference["completion_logprobs"])]
    if len(served) != len(reference["completion_logprobs"]) or max(gaps) > tolerance:
        problems.append(
            f"log-probabilities differ from the reference by up to "
            f"{max(gaps, default=float('nan')):.2e} (tolerance {tolerance:.0e}): "
            f"{served} vs {reference['completion_logprobs']}"
        )
    return problems


def max_logprob_gap(response: dict, reference: dict) -> float:
    """The largest |served - reference| log-probability over the generated tokens."""
    content = response["choices"][0]["logprobs"]["content"]
    return max(abs(e["logprob"] - r) for e, r in zip(content, reference["completion_logprobs"]))


def stop(node: Node, timeout_s: float = STOP_WITHIN_S) -> float | None:
    """SIGTERM the node; wait for its whole process group to end.

    Returns:
        Seconds from SIGTERM until no process of its group was left, or None when that
        took longer than ``timeout_s`` (then the group is killed).
    """
    start = time.monotonic()
    if node.process.poll() is None:
        node.process.send_signal(signal.SIGTERM)
    return wait_stopped(node, start, timeout_s)


def wait_stopped(node: Node, since: float, timeout_s: float) -> float | None:
    """Wait until no process of the node's group is left (after a SIGTERM sent at
    ``since``, a ``time.monotonic()``), without signalling it.

    Returns:
        Seconds from ``since`` until the group was gone, or None when it still ran
        ``timeout_s`` after ``since`` (then the group is killed).
    """
    deadline = since + timeout_s
    while time.monotonic() < deadline:
        node.process.poll()
        if node.process.returncode is not None and not group_alive(node.process.pid):
            if node._reader:
                node._reader.join(timeout=5)
            return time.monotonic() - since
        time.sleep(0.05)
    kill(node)
    return None


def group_pids(pgid: int) -> list[int]:
    """The processes of the process group ``pgid`` (from ``/proc/PID/stat``, field 5)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return sorted(pids)


class EventStream:
    """A streamed (``"stream": true``) chat completion, read as its server-sent events.

    Attributes:
        status: the HTTP status.
        done: the stream ended with ``data: [DONE]``.
        broken: the connection ended in the middle of the stream (the reason, or "").
    """

    def __init__(
        self, port: int, body: dict, headers: dict[str, str] | None = None, timeout_s: float = 300.0
    ):
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        self._conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        self._response = self._conn.getresponse()
        self.status = self._response.status
        self.done = False
        self.broken = ""

    def events(self):
        """Yield each event's JSON (a ``chat.completion.chunk`` or an error) in order, until
        ``[DONE]`` or the end of the connection."""
        try:
            while True:
                line = self._response.readline()
                if not line:
                    return
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[len(b"data:") :].strip()
                if data == b"[DONE]":
                    self.done = True
                    return
                yield json.loads(data)
        except (http.client.HTTPException, OSError) as error:
            self.broken = f"{type(error).__name__}: {error}"

    def close(self) -> None:
        self._conn.close()


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill(node: Node) -> None:
    """SIGKILL whatever is left of the node's process group (ours: it started it)."""
    if group_alive(node.process.pid):
        try:
            os.killpg(node.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        node.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    if node._reader:
        node._reader.join(timeout=5)
