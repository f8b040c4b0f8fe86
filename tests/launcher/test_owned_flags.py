"""Flags the launcher sets from a variable are refused in EXTRA_ARGS and after the image name.

In-process, with plain dicts (entrypoint.plan, entrypoint.engines.owned_option). The tables
themselves are checked against the pinned parsers in test_engine_contract.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrypoint.engines import engine_module, owned_option
from entrypoint.errors import EXIT_CONFIG, OwnedFlagError
from entrypoint.plan import resolve_plan
from entrypoint.settings import BY_NAME, load_settings

SECRET = "sk-never-shown-0123"


def plan(env, passthrough=()):
    return resolve_plan(load_settings(env, installed=lambda: ["vllm"]), passthrough)


@pytest.mark.parametrize(
    "engine, extra, variables",
    [
        ("vllm", "--port 9000", ["PORT"]),
        ("vllm", "--port=9000", ["PORT"]),
        ("vllm", "--por 9000", ["PORT"]),
        ("vllm", "--ho ::", ["HOST"]),
        ("vllm", "-tp 4", ["GPUS_PER_NODE"]),
        ("vllm", "-t 4", ["GPUS_PER_NODE"]),
        ("vllm", "--tensor_parallel_size 4", ["GPUS_PER_NODE"]),
        ("vllm", "--data-parallel-size-local 2", ["NNODES"]),
        ("vllm", "-dpr 1", ["NODE_RANK"]),
        ("vllm", "--headless", ["NODE_RANK"]),
        ("vllm", "--model other/model", ["MODEL"]),
        ("vllm", "--served_model_name x", ["SERVED_MODEL_NAME"]),
        ("vllm", f"--api-key {SECRET}", ["API_KEY"]),
        ("vllm", f"--api_k={SECRET}", ["API_KEY"]),
        ("sglang", "--tp 4", ["GPUS_PER_NODE", "NNODES"]),
        ("sglang", "--ep 4", ["GPUS_PER_NODE", "NNODES"]),
        ("sglang", "--expert-parallel-size 4", ["GPUS_PER_NODE", "NNODES"]),
        ("sglang", "--model /m", ["MODEL"]),
        ("sglang", "--model-path=/m", ["MODEL"]),
        ("sglang", "--nccl-init-addr h:1", ["MASTER_IP", "MASTER_PORT"]),
        ("sglang", "--node-r 1", ["NODE_RANK"]),
        ("sglang", f"--api {SECRET}", ["API_KEY"]),
    ],
)
def test_an_owned_flag_in_extra_args_names_the_variable(engine, extra, variables):
    with pytest.raises(OwnedFlagError) as info:
        plan({"ENGINE": engine, "EXTRA_ARGS": extra})
    message = info.value.message()
    assert info.value.exit_status == EXIT_CONFIG
    assert info.value.variables == variables
    assert message.startswith("EXTRA_ARGS: ") and all(v in message for v in variables)
    assert SECRET not in message and "9000" not in message and "\n" not in message


def test_after_the_image_name_and_after_the_separator_too():
    with pytest.raises(OwnedFlagError) as info:
        plan({"ENGINE": "vllm"}, ["--seed", "1", "--port", "9"])
    assert info.value.where == "the arguments after the image name"
    assert "PORT" in info.value.message()


@pytest.mark.parametrize(
    "engine, extra",
    [
        ("vllm", "--max-model-len 4096"),  # owned only while CONTEXT_LENGTH is set
        ("vllm", "--data-parallel-rank 0"),  # vLLM's, but no variable of ours sets it
        ("vllm", "--portal x"),  # not a spelling of --port (an unknown flag)
        ("vllm", "--seed -1"),  # a value that starts with -
        ("sglang", "--context-length 4096"),
        ("sglang", "--config mine.yaml"),  # owned only while an API key is set
        ("sglang", "--dp-size 2"),
        ("sglang", "--host-ip x"),  # longer than --host: another option
    ],
)
def test_other_flags_pass_through(engine, extra):
    assert plan({"ENGINE": engine, "EXTRA_ARGS": extra}).extra_args == tuple(extra.split())


@pytest.mark.parametrize(
    "engine, env, extra",
    [
        # The variable off, the flag is the deployment's own.
        ("vllm", {"TOOL_CALLS": "off"}, "--enable-auto-tool-choice --tool-call-parser hermes"),
        ("vllm", {}, "--speculative-config {}"),  # MTP off
        ("vllm", {}, "--reasoning-parser deepseek_r1"),  # VARIANT=chat
        ("sglang", {}, "--speculative-algorithm EAGLE --speculative-num-steps 3"),
        # Fixed options, tied to no variable (FIXED_OPTIONS): a deliberate override.
        ("sglang", {}, "--attention-backend fa3"),
        ("sglang", {"NNODES": "2", "MASTER_IP": "10.0.0.1"}, "--dist-timeout 7200"),
    ],
)
def test_flags_owned_while_a_variable_is_on_pass_when_it_is_off(engine, env, extra):
    assert plan({"ENGINE": engine, **env, "EXTRA_ARGS": extra}).extra_args == tuple(extra.split())


@pytest.mark.parametrize(
    "engine, env, extra, variable, remedy",
    [
        ("vllm", {}, "--shutdown-timeout 5", "SHUTDOWN_TIMEOUT_S", "set SHUTDOWN_TIMEOUT_S"),
        ("vllm", {}, "--shutdown_t=5", "SHUTDOWN_TIMEOUT_S", "set SHUTDOWN_TIMEOUT_S"),
        ("vllm", {}, "--tool-call-parser hermes", "TOOL_CALLS", "set TOOL_CALLS=off or drop"),
        ("vllm", {"TOOL_CALLS": "1"}, "--tool-call hermes", "TOOL_CALLS", "TOOL_CALLS=off"),
        ("vllm", {}, "--disable-auto-tool-choice", "TOOL_CALLS", "set TOOL_CALLS=off or drop"),
        ("vllm", {"MTP": "1"}, "--speculative-config {}", "MTP", "unset MTP or drop"),
        ("vllm", {"MTP": "1"}, "-sc {}", "MTP", "unset MTP or drop"),
        ("vllm", {"VARIANT": "thinking"}, "--reasoning-parser x", "VARIANT", "; drop"),
        ("vllm", {"VARIANT": "thinking"}, "--reasoning-parser-plugin /p.py", "VARIANT", "; drop"),
        ("sglang", {"MTP": "1"}, "--speculative-algorithm EAGLE", "MTP", "unset MTP or drop"),
        ("sglang", {"MTP": "1"}, "--speculative-num-steps 3", "MTP", "unset MTP or drop"),
        ("sglang", {"MTP": "1"}, "--speculative-eagle-topk=4", "MTP", "unset MTP or drop"),
        ("sglang", {"MTP": "1"}, "--speculative-num-draft 4", "MTP", "unset MTP or drop"),
        ("sglang", {"MTP": "1"}, "--speculative-draft-model /d", "MTP", "unset MTP or drop"),
        ("sglang", {"MTP": "1"}, "--speculative-draft-model-rev x", "MTP", "unset MTP or drop"),
    ],
)
def test_flags_the_launcher_emits_from_a_variable_are_refused(engine, env, extra, variable, remedy):
    with pytest.raises(OwnedFlagError) as info:
        plan({"ENGINE": engine, **env, "EXTRA_ARGS": extra})
    message = info.value.message()
    assert info.value.exit_status == EXIT_CONFIG and info.value.variables == [variable]
    assert message.startswith("EXTRA_ARGS: ") and remedy in message and "\n" not in message


# Plans that between them make build_argv emit every option it can.
EVERY_OPTION_PLANS = [
    {"MTP": "1", "VARIANT": "thinking", "CONTEXT_LENGTH": "8192", "API_KEY": SECRET},
    {"MTP": "1", "DOWNLOAD": "0", "MODEL_REVISION": "v1", "TOOL_CALLS": "on"},
    {"PRECISION": "bf16", "MASTER_IP": "10.0.0.1", "NODE_RANK": "0"},
    {"PRECISION": "bf16", "MASTER_IP": "10.0.0.1", "NODE_RANK": "1", "MTP": "1"},
]


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
@pytest.mark.parametrize("env", EVERY_OPTION_PLANS)
def test_every_option_the_launcher_emits_is_owned_or_declared_fixed(engine, env):
    """No emitted option can be given again in EXTRA_ARGS unnoticed: each is refused while
    the launcher emits it (OWNED_OPTIONS, OWNED_WHEN_SET with its variable on), or is a
    fixed one a deployment may override (FIXED_OPTIONS)."""
    from entrypoint.engines import build_argv
    from entrypoint.plan import owning_variables_on

    env = {"ENGINE": engine, **env}
    if engine == "sglang":
        env.pop("TOOL_CALLS", None)
    settings = load_settings(env, installed=lambda: [engine])
    built = plan(env)
    module = engine_module(engine)
    on = owning_variables_on(settings.values, tool_calls=built.tool_calls)
    while_on = [row for row in module.OWNED_WHEN_SET if set(row[2].split()) & on]
    table = [*module.OWNED_OPTIONS, *while_on]
    for token in build_argv(built):
        if token.startswith("--"):
            owned = owned_option(token, table)
            if token in module.FIXED_OPTIONS:
                assert owned is None, token
                continue
            assert owned is not None and owned[0] == token, token
            # ... and a second copy in EXTRA_ARGS is refused.
            with pytest.raises(OwnedFlagError):
                plan({**env, "EXTRA_ARGS": f"{token}=1"})


@pytest.mark.parametrize(
    "engine, env, extra, variable",
    [
        ("vllm", {"CONTEXT_LENGTH": "8192"}, "--max-model-len 4096", "CONTEXT_LENGTH"),
        ("vllm", {"CONTEXT_LENGTH": "8192"}, "--max_model_len=4096", "CONTEXT_LENGTH"),
        ("sglang", {"CONTEXT_LENGTH": "8192"}, "--context-len 4096", "CONTEXT_LENGTH"),
        ("sglang", {"API_KEY": SECRET}, "--config mine.yaml", "API_KEY"),
        ("sglang", {"API_KEY_FILE": "/run/key"}, "--conf mine.yaml", "API_KEY_FILE"),
    ],
)
def test_flags_owned_while_their_variable_is_set(engine, env, extra, variable):
    with pytest.raises(OwnedFlagError) as info:
        plan({"ENGINE": engine, **env, "EXTRA_ARGS": extra})
    assert variable in info.value.message() and SECRET not in info.value.message()


def test_every_owning_variable_exists():
    for engine in ("sglang", "vllm"):
        module = engine_module(engine)
        for option, shortest, variables, _note in (*module.OWNED_OPTIONS, *module.OWNED_WHEN_SET):
            assert option.startswith("-") and 2 <= shortest <= len(option)
            assert all(name in BY_NAME for name in variables.split()), option


@given(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_-=0123456789"), max_size=30))
def test_a_token_is_owned_only_as_a_spelling_of_an_owned_option(token):
    table = engine_module("vllm").OWNED_OPTIONS
    found = owned_option(token, table)
    if found is None:
        return
    name = token.split("=", 1)[0]
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
    option = found[0]
    row = next(r for r in table if r[0] == option)
    assert option.startswith(name) and len(name) >= row[1]
