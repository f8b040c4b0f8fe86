"""The README's first command: the main job, for real, on a machine without GPU or Docker.

    python3 -m venv .venv && .venv/bin/pip install -e . && \
        .venv/bin/python -m tests.real_engine.demo

1. builds (once; then checks) the real-engine environment and the tiny checkpoint
   (``tests.real_engine.env``: about 1.5 minutes and 4 GB the first time);
2. starts ``python -m entrypoint`` with ENGINE=vllm and MODEL=the tiny checkpoint: our
   launcher checks the host (PREFLIGHT=warn: there is no GPU here) and execs the real
   ``vllm serve`` (vLLM's CPU build);
3. shows what the launcher printed (its plan, its host checks, the command it exec'd),
   waits for ``GET /health``, sends one ``/v1/chat/completions`` request, prints the
   response's JSON on stdout (per-token log-probabilities left out) and checks it
   against transformers' answer for the same checkpoint;
4. stops the server with SIGTERM, as ``docker stop`` would.

The model is tiny and randomly initialised: its answer is gibberish, the same gibberish
transformers computes. Progress goes to stderr. Exit status 0 when every step worked, 1
otherwise (the message says which step, with the server's log).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


SERVED_MODEL_NAME = "tiny-random-longcat-flash"


def without_logprobs(response: dict) -> dict:
    """The response with each choice's ``logprobs`` (hundreds of lines of per-token
    numbers, checked against transformers' all the same) replaced by a short note."""
    shown = dict(response)
    choices = []
    for choice in response.get("choices", []):
        choice = dict(choice)
        if choice.get("logprobs"):
            count = len(choice["logprobs"].get("content") or [])
            choice["logprobs"] = f"({count} tokens' log-probabilities, not shown)"
        choices.append(choice)
    shown["choices"] = choices
    return shown


def run() -> int:
    """Run the demo; return the exit status."""
    from tests.images.dockerutil import free_port
    from tests.real_engine import server
    from tests.real_engine.checkpoint import load_reference
    from tests.real_engine.env import ensure

    start = time.monotonic()
    try:
        python, checkpoint = ensure()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        _say(f"error: the real-engine environment could not be built: {exc}")
        return 1
    reference = load_reference(checkpoint)
    port = free_port()
    variables = server.launcher_variables(checkpoint / "model", port)
    # A name that says what answers; unset, a local checkpoint would be served under the
    # 560B repo id (README, "Serving: what clients get").
    variables["SERVED_MODEL_NAME"] = SERVED_MODEL_NAME
    env = server.engine_environment(python.parent)
    env.update(variables)
    shown = " ".join(f"{k}={v!r}" if " " in v else f"{k}={v}" for k, v in variables.items())
    log = Path(tempfile.mkdtemp(prefix="longcat-demo-")) / "server.log"
    _say(f"starting: {shown} {sys.executable} -m entrypoint   (log: {log})")
    node = server.start_node("the server", env, port, log)
    try:
        exec_s = server.wait_exec(node)
        for line in node.launcher_lines():
            print(f"  {line}", file=sys.stderr, flush=True)
        _say(
            f"the launcher exec'd vllm serve after {exec_s:.1f} s; waiting for "
            f"http://127.0.0.1:{port}/health"
        )
        healthy_s = server.wait_healthy(node)
        _say(
            f"healthy after {healthy_s:.1f} s; POST /v1/chat/completions "
            f"{json.dumps(reference['messages'])}"
        )
        status, response = server.ask(port, reference)
        if status != 200:
            _say(f"error: the chat request answered {status}: {response}")
            return 1
        print(json.dumps(without_logprobs(response), indent=2), flush=True)
        problems = server.answer_problems(response, reference)
        if problems:
            _say("error: the answer is not transformers' reference:\n  " + "\n  ".join(problems))
            return 1
        _say(
            f"the answer is transformers' own for this checkpoint: the same "
            f"{len(reference['completion_token_ids'])} token ids, log-probabilities within "
            f"{server.max_logprob_gap(response, reference):.0e}"
        )
        stopped = server.stop(node, server.DRAIN_STOP_WITHIN_S)
        if stopped is None:
            _say(f"error: the server still ran {server.DRAIN_STOP_WITHIN_S:.0f} s after SIGTERM")
            return 1
        _say(f"stopped {stopped:.1f} s after SIGTERM; {time.monotonic() - start:.0f} s in all")
        shutil.rmtree(log.parent, ignore_errors=True)
        return 0
    except (RuntimeError, OSError) as exc:
        _say(f"error: {exc} (the server's log: {log})")
        return 1
    finally:
        server.kill(node)


if __name__ == "__main__":
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(run())
