"""What clients get (README, "Serving: what clients get"), on the real vLLM engine.

Two deployments of the tiny checkpoint through our launcher, each started once for its
class of tests and stopped by the class's last test (SIGTERM with a request in flight);
the fixture kills whatever is left. Between them they set every serving variable both
ways, so each feature is seen on and off on a real server:

====================  =================================  ===================================
variable              ``chat``                           ``thinking``
====================  =================================  ===================================
VARIANT               unset (chat)                       thinking
TOOL_CALLS            unset (on, vLLM's default)         off
API key               ``API_KEY``                        ``API_KEY_FILE``
SERVED_MODEL_NAME     unset (the repo id)                ``longcat``
CONTEXT_LENGTH        unset (``--max-model-len 512``     256
                      in EXTRA_ARGS)
SHUTDOWN_TIMEOUT_S    60: SIGTERM drains                 0: SIGTERM cuts requests off
====================  =================================  ===================================

A randomly initialised model never writes ``<longcat_think>`` itself, so both deployments
get a chat template whose generation prompt ends with it (``--chat-template`` in
EXTRA_ARGS), as a Thinking model's template may (docs/engines.md, "Serving features"):
the whole output is then reasoning. Both serve the same checkpoint with the same template,
so their greedy answers are the same tokens; only the parser decides where they go.

The real engine here is vLLM's CPU build (images/matrix.toml ``[real_engine]``), one
minor version behind the image's vLLM; where the two differ, the test says so.
"""

from __future__ import annotations

import secrets
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.images.dockerutil import free_port
from tests.real_engine import server
from tests.real_engine.checkpoint import CHAT_TEMPLATE
from tests.real_engine.env import real_engine_pin

pytestmark = pytest.mark.real_engine

# The tiny checkpoint's template with the generation prompt left inside the reasoning.
GENERATION_PROMPT = "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
THINKING_TEMPLATE = CHAT_TEMPLATE.replace(
    GENERATION_PROMPT, "{% if add_generation_prompt %} ASSISTANT:<longcat_think>{% endif %}"
)
MESSAGES = [{"role": "user", "content": "Hello, LongCat! How are you today?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
# The chat deployment's repo id: VARIANT and PRECISION unset, MODEL a local directory.
CHAT_REPO_ID = "meituan-longcat/LongCat-Flash-Chat-FP8"
THINKING_REPO_ID = "meituan-longcat/LongCat-Flash-Thinking-FP8"
THINKING_NAME = "longcat"
CONTEXT_LENGTH = 256
# Tokens of a short answer, and of the request in flight at SIGTERM. MESSAGES are 47
# prompt tokens with THINKING_TEMPLATE; the tiny model writes about 80 tokens/s on an idle
# 2-core machine, so DRAIN_TOKENS take about 5 s there.
SHORT_TOKENS = 8
DRAIN_TOKENS = 400  # + the prompt <= 512, the chat deployment's length
ABORT_TOKENS = 160  # + the prompt <= CONTEXT_LENGTH
DRAIN_TIMEOUT_S = 60
# How long the client of the request cut off by SHUTDOWN_TIMEOUT_S=0 waits for more.
ABORT_IDLE_S = 15.0
# After the last request ended, the engine's own teardown: 2 to 11 s measured here.
EXIT_MARGIN_S = 30.0
# What vLLM logs when SIGTERM finds one request in flight and SHUTDOWN_TIMEOUT_S > 0
# (vllm/v1/engine/core.py, EngineCore._handle_shutdown).
DRAINING = "[shutdown] EngineCore: draining in-flight requests count=1"
# ... and at 0: its API server's process manager kills the engine core at once
# (vllm/v1/engine/utils.py, CoreEngineProcManager.shutdown with a timeout of 0; only ROCm
# gets a grace period, get_engine_process_shutdown_timeout), before the core can abort
# anything itself.
KILLING = "[shutdown] Process manager: force killing remaining process EngineCore"
# The message vLLM answers tool_choice "auto" with when tool calls are off
# (vllm/renderers/online_renderer.py in 0.32.0).
AUTO_TOOL_CHOICE_REFUSED = '"auto" tool choice requires --enable-auto-tool-choice'


@dataclass
class Served:
    """One running deployment.

    Attributes:
        node: the launcher process, now the engine.
        env: the environment it was started with (the launcher's variables included).
        key: the API key clients must send.
    """

    node: server.Node
    env: dict[str, str]
    key: str

    @property
    def port(self) -> int:
        return self.node.port

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.key)

    @property
    def exec_line(self) -> str:
        return next(
            line
            for line in self.node.log.read_text().splitlines()
            if line.startswith(server.EXEC_LINE)
        )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key() -> str:
    """A fresh key for one deployment (printable, no spaces: what API_KEY accepts)."""
    return f"sk-e2e-{secrets.token_hex(16)}"


# Serving variables that must come only from the fixture, never from the test's own
# environment.
SERVING_VARIABLES = (
    "VARIANT",
    "TOOL_CALLS",
    "SERVED_MODEL_NAME",
    "API_KEY",
    "API_KEY_FILE",
    "VLLM_API_KEY",
    "CONTEXT_LENGTH",
    "SHUTDOWN_TIMEOUT_S",
)


def deploy(
    real_engine, folder: Path, name: str, variables: dict[str, str], key: str, engine_flags: str
):
    """Start one deployment with ``variables`` over the one-node defaults; yield it healthy,
    kill what is left of it at the end."""
    assert "<longcat_think>" in THINKING_TEMPLATE, "CHAT_TEMPLATE's generation prompt moved"
    template = folder / "thinking-template.jinja"
    template.write_text(THINKING_TEMPLATE)
    port = free_port()
    env = server.engine_environment(real_engine.bin)
    for variable in SERVING_VARIABLES:
        env.pop(variable, None)
    env.update(server.launcher_variables(real_engine.model, port))
    env["EXTRA_ARGS"] = f"{engine_flags} --chat-template {shlex.quote(str(template))}"
    env.update(variables)
    node = server.start_node(name, env, port, folder / f"{name}.log")
    try:
        server.wait_healthy(node)
        yield Served(node, env, key)
    finally:
        server.kill(node)


def dry_run(env: dict[str, str]) -> str:
    """The launcher's dry run (stdout) with ``env``."""
    done = subprocess.run(
        [sys.executable, "-m", "entrypoint", "--dry-run"],
        cwd=server.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dry_run_value(text: str, variable: str) -> str:
    """The value column of ``variable``'s row in a dry run (values hold no spaces here)."""
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == [variable]:
            return fields[1]
    raise AssertionError(f"no {variable} row in the dry run:\n{text}")


def models(served: Served) -> dict:
    status, answer = server.http_json(served.port, "GET", "/v1/models", headers=served.auth)
    assert status == 200, answer
    return answer


def chat_body(model: str, max_tokens: int = SHORT_TOKENS, **more) -> dict:
    """A greedy chat request for MESSAGES, ``max_tokens`` long (``ignore_eos``: exactly)."""
    return {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        **more,
    }


def stream(
    served: Served, model: str, max_tokens: int, idle_s: float = 300.0
) -> server.EventStream:
    """A streamed request; ``idle_s``: how long a read may wait for the next bytes."""
    body = chat_body(model, max_tokens, stream=True, stream_options={"include_usage": True})
    events = server.EventStream(served.port, body, served.auth, timeout_s=idle_s)
    assert events.status == 200
    return events


def deltas(chunks: list[dict]) -> list[dict]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk.get("choices")]


def finish_reasons(chunks: list[dict]) -> list[str]:
    return [
        chunk["choices"][0]["finish_reason"]
        for chunk in chunks
        if chunk.get("choices") and chunk["choices"][0].get("finish_reason")
    ]


def usage(chunks: list[dict]) -> dict | None:
    return next((chunk["usage"] for chunk in chunks if chunk.get("usage")), None)


def generated(delta: dict) -> bool:
    return bool(delta.get("content") or delta.get("reasoning"))


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


# --- checks both deployments make ---------------------------------------------------------


def check_the_key_guards_the_api_only(served: Served) -> None:
    """401 without the key or with a wrong one, 200 with it; /health and /metrics open."""
    port = served.port
    assert server.http_json(port, "GET", "/v1/models")[0] == 401
    assert server.http_json(port, "GET", "/v1/models", headers=bearer(new_key()))[0] == 401
    status, answer = server.http_json(
        port, "POST", "/v1/chat/completions", chat_body(models(served)["data"][0]["id"])
    )
    assert status == 401, answer
    status, answer = server.http_json(
        port,
        "POST",
        "/v1/chat/completions",
        chat_body(models(served)["data"][0]["id"]),
        headers=served.auth,
    )
    assert status == 200, answer
    assert server.http_json(port, "GET", "/health")[0] == 200
    assert server.http_json(port, "GET", "/metrics")[0] == 200


def key_holders(served: Served) -> tuple[list[str], dict[str, list[str]]]:
    """Where the key shows: the launcher's and the engine's output, the dry run, and each
    engine process's command line and environment (``/proc``).

    Returns:
        (places that must not hold it, {process: the names of the environment variables
        holding it}) for every process of the engine's process group.
    """
    key = served.key.encode()
    found = []
    if key in served.node.log.read_bytes():
        found.append("the launcher's and the engine's output")
    if served.key in dry_run(served.env):
        found.append("the dry run")
    holders = {}
    pids = server.group_pids(served.node.process.pid)
    assert len(pids) >= 2, f"the engine's processes: {pids} (the API server and its core)"
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        process = f"{pid} ({name})"
        if key in cmdline:
            found.append(f"the command line of process {process}")
        holders[process] = [entry.split(b"=", 1)[0].decode() for entry in environ if key in entry]
        if any(entry.startswith((b"API_KEY=", b"API_KEY_FILE=")) for entry in environ):
            found.append(f"API_KEY or API_KEY_FILE in the environment of process {process}")
    return found, holders


def check_the_key_is_only_in_vllm_api_key(served: Served) -> None:
    """The key is in no output, dry run or command line; in the engine's environment it is
    VLLM_API_KEY's value, and that is the only variable holding it in any process.

    The engine core and its workers inherit the API server's environment but rename
    themselves (vllm/utils/system_utils.py, ``setproctitle``), which reuses the memory
    ``/proc/PID/environ`` shows: there they show no key at all.
    """
    found, holders = key_holders(served)
    print(f"\nprocesses holding the key in their environment: {holders}")
    assert found == []
    engine = served.node.process.pid
    environ = Path(f"/proc/{engine}/environ").read_bytes().split(b"\0")
    assert f"VLLM_API_KEY={served.key}".encode() in environ
    assert all(names in ([], ["VLLM_API_KEY"]) for names in holders.values()), holders


def check_metrics(served: Served, name: str) -> None:
    """GET /metrics without a key: Prometheus text with vLLM's metrics for ``name``."""
    status, text = server.http_json(served.port, "GET", "/metrics")
    assert status == 200
    lines = text.splitlines()
    assert any(line.startswith("vllm:") for line in lines), text[:2000]
    # The request counter carries the served name (vllm/v1/metrics/loggers.py).
    assert any(
        line.startswith("vllm:request_success_total{") and f'model_name="{name}"' in line
        for line in lines
    ), [line for line in lines if "request_success" in line]


@dataclass
class Stopped:
    """A streamed request in flight at SIGTERM, and how the engine stopped.

    Attributes:
        chunks: every event of the stream, in order.
        stream: the stream (``done``: it ended with ``[DONE]``; ``broken``: why not).
        before: tokens received before SIGTERM.
        request_s: SIGTERM to the stream's end (or to the client giving up on it).
        exit_s: the stream's end to no process left; None when that took longer than
            EXIT_MARGIN_S (then the engine was killed).
    """

    chunks: list[dict]
    stream: server.EventStream
    before: int
    request_s: float
    exit_s: float | None

    @property
    def pieces(self) -> int:
        """Deltas that carried text: a token each, unless a parser held text back."""
        return sum(generated(delta) for delta in deltas(self.chunks))

    @property
    def errors(self) -> list[dict]:
        return [chunk["error"] for chunk in self.chunks if "error" in chunk]


def stop_in_flight(served: Served, max_tokens: int, idle_s: float) -> Stopped:
    """Start a streamed request of ``max_tokens``, SIGTERM the engine once the first token
    arrived, read the stream to its end (a client that waits ``idle_s`` at most for more),
    close it, and wait up to EXIT_MARGIN_S for the engine to exit."""
    events = stream(served, models(served)["data"][0]["id"], max_tokens, idle_s)
    chunks = []
    reader = events.events()
    for chunk in reader:
        chunks.append(chunk)
        if any(generated(delta) for delta in deltas([chunk])):
            break
    before = sum(generated(delta) for delta in deltas(chunks))
    sigterm = time.monotonic()
    served.node.process.send_signal(signal.SIGTERM)
    try:
        chunks += list(reader)
    finally:
        events.close()
    ended = time.monotonic()
    exit_s = server.wait_stopped(served.node, ended, EXIT_MARGIN_S)
    return Stopped(chunks, events, before, ended - sigterm, exit_s)


# --- the chat deployment -------------------------------------------------------------------


@pytest.fixture(scope="class")
def chat(real_engine, tmp_path_factory):
    """VARIANT, TOOL_CALLS and SERVED_MODEL_NAME unset, API_KEY set, in-flight requests
    drained for DRAIN_TIMEOUT_S."""
    key = new_key()
    yield from deploy(
        real_engine,
        tmp_path_factory.mktemp("chat"),
        "chat",
        {"API_KEY": key, "SHUTDOWN_TIMEOUT_S": str(DRAIN_TIMEOUT_S)},
        key,
        server.ENGINE_FLAGS,
    )


class TestChat:
    def test_tool_calls_are_on_and_auto_tool_choice_is_served(self, chat):
        assert "--enable-auto-tool-choice --tool-call-parser longcat" in chat.exec_line
        status, answer = server.http_json(
            chat.port,
            "POST",
            "/v1/chat/completions",
            chat_body(CHAT_REPO_ID, tools=TOOLS, tool_choice="auto"),
            headers=chat.auth,
        )
        assert status == 200, answer
        message = answer["choices"][0]["message"]
        # Random weights write no <longcat_tool_call>: the parser finds no call in the text.
        assert not message.get("tool_calls") and message["content"], message

    def test_the_key_guards_the_api_and_health_and_metrics_stay_open(self, chat):
        check_the_key_guards_the_api_only(chat)

    def test_the_key_is_only_in_vllm_api_key(self, chat):
        check_the_key_is_only_in_vllm_api_key(chat)

    def test_metrics(self, chat):
        check_metrics(chat, CHAT_REPO_ID)

    def test_the_served_name_is_the_dry_runs_repo_id(self, chat, real_engine):
        assert dry_run_value(dry_run(chat.env), "SERVED_MODEL_NAME") == CHAT_REPO_ID
        assert chat.exec_line.startswith(f"{server.EXEC_LINE}vllm serve {real_engine.model} ")
        listed = models(chat)["data"]
        assert [entry["id"] for entry in listed] == [CHAT_REPO_ID]
        # No CONTEXT_LENGTH: the length comes from EXTRA_ARGS (--max-model-len), unchanged.
        assert listed[0]["max_model_len"] == server.MAX_MODEL_LEN

    def test_without_the_thinking_variant_everything_is_content(self, chat):
        assert "--reasoning-parser" not in chat.exec_line
        status, answer = server.http_json(
            chat.port, "POST", "/v1/chat/completions", chat_body(CHAT_REPO_ID), headers=chat.auth
        )
        assert status == 200, answer
        message = answer["choices"][0]["message"]
        assert message["content"] and message["reasoning"] is None, message
        events = stream(chat, CHAT_REPO_ID, SHORT_TOKENS)
        try:
            chunks = list(events.events())
        finally:
            events.close()
        assert events.done, events.broken
        streamed = deltas(chunks)
        assert not any(delta.get("reasoning") for delta in streamed), streamed
        assert "".join(delta.get("content") or "" for delta in streamed) == message["content"]

    def test_sigterm_lets_the_request_in_flight_finish(self, chat):
        """SHUTDOWN_TIMEOUT_S=60: the streamed request started before SIGTERM gets all its
        tokens, then the engine exits."""
        stopped = stop_in_flight(chat, DRAIN_TOKENS, idle_s=DRAIN_TIMEOUT_S)
        chunks, events = stopped.chunks, stopped.stream
        print(
            f"\ndrain: SIGTERM after {stopped.before} of {DRAIN_TOKENS} tokens; the request "
            f"ended {stopped.request_s:.1f} s later, the engine exited "
            f"{seconds(stopped.exit_s)} after that"
        )
        assert DRAINING in chat.node.log.read_text(), chat.node.log_tail()
        assert events.done and not events.broken, (events.broken, chunks[-3:])
        assert finish_reasons(chunks) == ["length"]
        assert (usage(chunks) or {}).get("completion_tokens") == DRAIN_TOKENS, chunks[-2:]
        assert stopped.request_s < DRAIN_TIMEOUT_S
        assert stopped.exit_s is not None, (
            f"still running {EXIT_MARGIN_S:.0f} s after the request:\n{chat.node.log_tail()}"
        )


# --- the thinking deployment ---------------------------------------------------------------


@pytest.fixture(scope="class")
def thinking(real_engine, tmp_path_factory):
    """VARIANT=thinking, TOOL_CALLS=off, SERVED_MODEL_NAME=longcat, the key in a file,
    CONTEXT_LENGTH=256, SHUTDOWN_TIMEOUT_S=0."""
    folder = tmp_path_factory.mktemp("thinking")
    key = new_key()
    key_file = folder / "api-key"
    key_file.write_text(key + "\n")  # as `echo KEY > file` writes it
    key_file.chmod(0o600)
    yield from deploy(
        real_engine,
        folder,
        "thinking",
        {
            "VARIANT": "thinking",
            "TOOL_CALLS": "off",
            "SERVED_MODEL_NAME": THINKING_NAME,
            "API_KEY_FILE": str(key_file),
            "CONTEXT_LENGTH": str(CONTEXT_LENGTH),
            "SHUTDOWN_TIMEOUT_S": "0",
        },
        key,
        server.ENGINE_FLAGS_WITHOUT_LENGTH,
    )


class TestThinking:
    def test_tool_calls_off_refuse_auto_tool_choice(self, thinking):
        assert "--enable-auto-tool-choice" not in thinking.exec_line
        status, answer = server.http_json(
            thinking.port,
            "POST",
            "/v1/chat/completions",
            chat_body(THINKING_NAME, tools=TOOLS, tool_choice="auto"),
            headers=thinking.auth,
        )
        assert status == 400, answer
        assert AUTO_TOOL_CHOICE_REFUSED in answer["error"]["message"], answer

    def test_the_key_from_a_file_guards_the_api_and_health_and_metrics_stay_open(self, thinking):
        check_the_key_guards_the_api_only(thinking)

    def test_the_key_from_a_file_is_only_in_vllm_api_key(self, thinking):
        check_the_key_is_only_in_vllm_api_key(thinking)

    def test_metrics(self, thinking):
        check_metrics(thinking, THINKING_NAME)

    def test_the_served_name_is_served_model_name(self, thinking):
        assert dry_run_value(dry_run(thinking.env), "SERVED_MODEL_NAME") == THINKING_NAME
        assert [entry["id"] for entry in models(thinking)["data"]] == [THINKING_NAME]
        status, answer = server.http_json(
            thinking.port,
            "POST",
            "/v1/chat/completions",
            chat_body(THINKING_NAME),
            headers=thinking.auth,
        )
        assert status == 200, answer
        assert answer["model"] == THINKING_NAME
        status, answer = server.http_json(
            thinking.port,
            "POST",
            "/v1/chat/completions",
            chat_body(THINKING_REPO_ID),
            headers=thinking.auth,
        )
        assert status == 404, answer

    def test_with_a_local_model_variant_picks_only_the_name_and_the_parser(
        self, thinking, real_engine
    ):
        """MODEL, a directory, is served whatever VARIANT says: VARIANT=thinking gives the
        Thinking repo id as the default name, and the reasoning parser."""
        env = {k: v for k, v in thinking.env.items() if k != "SERVED_MODEL_NAME"}
        plan = dry_run(env)
        assert dry_run_value(plan, "MODEL") == str(real_engine.model)
        assert dry_run_value(plan, "SERVED_MODEL_NAME") == THINKING_REPO_ID
        assert thinking.exec_line.startswith(f"{server.EXEC_LINE}vllm serve {real_engine.model} ")
        assert "--reasoning-parser longcat_think" in thinking.exec_line

    def test_context_length(self, thinking):
        assert f"--max-model-len {CONTEXT_LENGTH}" in thinking.exec_line
        assert models(thinking)["data"][0]["max_model_len"] == CONTEXT_LENGTH
        long_prompt = [{"role": "user", "content": "LongCat " * CONTEXT_LENGTH}]
        status, answer = server.http_json(
            thinking.port,
            "POST",
            "/v1/chat/completions",
            dict(chat_body(THINKING_NAME), messages=long_prompt),
            headers=thinking.auth,
        )
        assert status == 400, answer
        assert f"maximum context length is {CONTEXT_LENGTH} tokens" in answer["error"]["message"], (
            answer
        )

    def test_streamed_reasoning_comes_apart_from_the_content(self, thinking):
        """Each delta carries ``reasoning`` (vLLM 0.32.0 and 0.33.0 name it so), none any
        content: the prompt left the reasoning open, and the output never closes it."""
        events = stream(thinking, THINKING_NAME, SHORT_TOKENS)
        try:
            chunks = list(events.events())
        finally:
            events.close()
        assert events.done, events.broken
        streamed = deltas(chunks)
        assert not any(delta.get("content") for delta in streamed), streamed
        assert not any("reasoning_content" in delta for delta in streamed), streamed
        assert "".join(delta.get("reasoning") or "" for delta in streamed), streamed
        assert finish_reasons(chunks) == ["length"]
        assert usage(chunks)["completion_tokens"] == SHORT_TOKENS

    def test_a_whole_answer_is_content_on_vllm_0_32(self, thinking):
        """vLLM 0.32.0 (the CPU build) never tells the reasoning parser the prompt of a whole
        answer: its ``Parser.set_prompt_token_ids`` does nothing
        (vllm/parser/abstract_parser.py), while a stream's ``parse_delta`` hands it over
        (``adjust_initial_state_from_prompt``). Our parser, not knowing the prompt opened
        the reasoning, and seeing an output that does not open it, returns content. vLLM
        0.33.0, the image's, forwards the prompt (``DelegatingParser.set_prompt_token_ids``)
        and the whole answer comes apart as the stream does
        (tests/launcher/test_reasoning_plugin.py, through 0.33.0's classes)."""
        assert real_engine_pin()[1] == "0.32.0", (
            "the real engine moved past 0.32.0: a whole answer now gets the prompt, so "
            "assert here that it comes apart as the stream does"
        )
        status, answer = server.http_json(
            thinking.port,
            "POST",
            "/v1/chat/completions",
            chat_body(THINKING_NAME),
            headers=thinking.auth,
        )
        assert status == 200, answer
        message = answer["choices"][0]["message"]
        events = stream(thinking, THINKING_NAME, SHORT_TOKENS)
        try:
            streamed = "".join(
                delta.get("reasoning") or "" for delta in deltas(list(events.events()))
            )
        finally:
            events.close()
        # The same greedy tokens: the stream's reasoning is the whole answer's content.
        assert message["reasoning"] is None and message["content"] == streamed, message

    def test_sigterm_with_shutdown_timeout_0_cuts_the_request_in_flight(self, thinking):
        """SHUTDOWN_TIMEOUT_S=0 (vLLM's own default): SIGTERM kills the engine core at once,
        and a streamed request in flight gets none of its remaining tokens.

        What the client sees is a race in vLLM (0.32.0 here), as the engine core's own abort
        and its being killed cross; each ending was seen here: ``finish_reason`` "abort"
        (the core aborted first), an error event with code 500 (the API server saw the core
        die), or nothing more, while the API server waits for the connection to close
        (uvicorn's graceful shutdown has no limit) and exits once the client gives up.
        Either way the engine exits within EXIT_MARGIN_S of the stream's end.
        """
        stopped = stop_in_flight(thinking, ABORT_TOKENS, idle_s=ABORT_IDLE_S)
        chunks, events = stopped.chunks, stopped.stream
        finished = finish_reasons(chunks)
        if finished:
            ending = f"finish_reason {finished}"
        elif stopped.errors:
            ending = f"the error event {stopped.errors}"
        else:
            ending = (
                f"nothing more for {ABORT_IDLE_S:.0f} s ({events.broken}); the client closed it"
            )
        print(
            f"\nabort: SIGTERM after {stopped.before} of {ABORT_TOKENS} tokens; the stream "
            f"ended {stopped.request_s:.1f} s later after {stopped.pieces} pieces of text with "
            f"{ending}; the engine exited {seconds(stopped.exit_s)} after that"
        )
        assert KILLING in thinking.node.log.read_text(), thinking.node.log_tail()
        assert stopped.pieces < ABORT_TOKENS and finished in ([], ["abort"]), chunks[-3:]
        if finished or stopped.errors:
            assert events.done, (events.broken, chunks[-3:])
            assert [error.get("code") for error in stopped.errors] in ([], [500]), chunks[-3:]
        else:
            assert "timed out" in events.broken, (events.broken, chunks[-3:])
        assert stopped.exit_s is not None, (
            f"still running {EXIT_MARGIN_S:.0f} s after the stream ended:\n"
            f"{thinking.node.log_tail()}"
        )
