"""Contract tests: our commands against the real, pinned engines' own parsers.

Each engine lives in its own cached virtual environment (tests/engine_venvs.py; .ci/setup
creates them). A missing environment fails these tests: it is never a skip.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.engine_venvs import pinned_versions, venv_python
from tests.launcher.support import (
    OUR_CASES,
    REPO,
    SERVING_CASES,
    SHARED_CASES,
    clean_env,
    load_cases,
)

pytestmark = pytest.mark.engines
ENGINES = sorted(pinned_versions())


def engine_python(name):
    python = venv_python(name)
    if not python.exists():
        pytest.fail(f"{python} is missing: run `.venv/bin/python -m tests.engine_venvs`")
    return python


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    return request.param, engine_python(request.param)


def engine_env(python, extra=None):
    env = clean_env(extra)
    env["PYTHONPATH"] = str(REPO)
    env["PATH"] = f"{python.parent}:{env['PATH']}"  # the venv's `vllm` command
    return env


def check(python, env, *args):
    return subprocess.run(
        [str(python), "-m", "entrypoint", "check", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


# Prints every option string of the engine's server parser, one per line.
OPTIONS = r"""
import argparse, os, sys
if sys.argv[1] == "sglang":
    from sglang.srt.server_args import ServerArgs
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
else:
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    parser = ServeSubcommand().subparser_init(
        FlexibleArgumentParser(prog="vllm").add_subparsers(dest="subparser"))
print("\n".join(["OPTIONS:", *parser._option_string_actions]))
"""
# How an option that takes a secret is named: its last word, or its last two words.
SECRET_ENDINGS = (
    "password",
    "secret",
    "api-key",
    "access-key",
    "secret-key",
    "hf-token",
    "auth-token",
    "access-token",
)


def test_every_secret_option_of_the_engine_is_redacted(engine):
    """Options named like a secret (SECRET_ENDINGS) are redacted in printed commands, in
    every spelling (entrypoint.output.SECRET_FLAGS); NOT_SECRET_OPTIONS lists exactly the
    parser's options that only begin like one."""
    from entrypoint.output import is_secret_flag, redact_argv

    name, python = engine
    done = subprocess.run(
        [str(python), "-c", OPTIONS, name],
        capture_output=True,
        text=True,
        env=engine_env(python),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    options = done.stdout.split("OPTIONS:\n", 1)[1].split()
    secret = [o for o in options if o.startswith("--") and o.endswith(SECRET_ENDINGS)]
    assert "--api-key" in secret
    for option in secret:
        assert is_secret_flag(option), f"{name}'s {option} is not redacted"
        assert is_secret_flag(option.replace("-", "_").replace("__", "--", 1))
        assert redact_argv([option, "s3cret"]) == [option, "***"]
    # The parser's options that only begin like a secret flag are the ones the launcher lets
    # through (an exact name wins over abbreviations); every other spelling is refused.
    from entrypoint.engines import engine_module
    from entrypoint.output import SECRET_FLAGS

    begins_like = {o for o in options if is_secret_flag(o) and o not in SECRET_FLAGS}
    assert set(engine_module(name).NOT_SECRET_OPTIONS) == begins_like


def test_every_standard_plan_is_accepted(engine):
    name, python = engine
    result = check(python, engine_env(python, {"ENGINE": name}), "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"against {name} {pinned_versions()[name]}" in result.stdout
    # {fp8 on 1 node, bf16 on 2 nodes} x MTP off/on x VARIANT chat/thinking x TOOL_CALLS
    # (on/off for vLLM, off for SGLang): 24 plans for vLLM, 12 for SGLang.
    plans = {"vllm": 24, "sglang": 12}[name]
    assert f"{plans} accepted, 0 rejected" in result.stdout


def test_a_planted_stale_flag_is_rejected_and_named(engine):
    name, python = engine
    result = check(
        python, engine_env(python, {"ENGINE": name, "EXTRA_ARGS": "--enable-ep-moe"}), "--all"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rejected --enable-ep-moe" in result.stdout
    assert "0 accepted" in result.stdout


def test_every_case_of_the_yaml_files_is_accepted(engine):
    name, python = engine
    cases = [
        c
        for path in (SHARED_CASES, SERVING_CASES, OUR_CASES)
        for c in load_cases(path)
        if "error" not in c["expect"] and str(c["env"].get("ENGINE", "")).lower() == name
    ]
    assert cases
    # The PATH the engine would run with: the environment's `vllm` command first.
    envs = [dict(c["env"], PATH=engine_env(python)["PATH"]) for c in cases]
    probe = subprocess.run(
        [str(python), "-m", "tests.launcher.contract_probe"],
        input=json.dumps(envs),
        env=engine_env(python),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    results = json.loads(probe.stdout.splitlines()[-1])
    for case, result in zip(cases, results):
        assert result["status"] == 0, f"{case['name']}: {result['report']}"


@pytest.mark.parametrize(
    "engine_name, planted",
    [
        ("sglang", "--log-lev debug"),  # an argparse abbreviation of --log-level
        ("sglang", "--attention-backend no-such"),  # a value outside the parser's choices
        ("vllm", "--max-num-seqs many"),  # a value the parser refuses
        (
            "vllm",
            '--speculative-config \'{"method":"longcat_flash_mtp","num_speculative_tokens":1}\'',
        ),
    ],
)
def test_checks_beyond_unknown_flags(engine_name, planted):
    python = engine_python(engine_name)
    result = check(python, engine_env(python, {"ENGINE": engine_name, "EXTRA_ARGS": planted}))
    assert result.returncode == 1, result.stdout + result.stderr
    assert planted.split()[0] in result.stdout.split("rejected", 1)[1]


# For the options of the given dests: every option string, and the length of its shortest
# prefix that the parser resolves to that option's action alone (argparse's abbreviations;
# ArgumentParser._parse_optional, as parse_args uses it).
ABBREVIATIONS = r"""
import argparse, contextlib, io, json, os, sys
engine, dests = sys.argv[1], sys.argv[2].split(",")
if engine == "sglang":
    from sglang.srt.server_args import ServerArgs
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
else:
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    parser = ServeSubcommand().subparser_init(
        FlexibleArgumentParser(prog="vllm").add_subparsers(dest="subparser"))

def resolves_to(text):
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            found = parser._parse_optional(text)
    except SystemExit:  # ambiguous
        return None
    if isinstance(found, list):  # Python 3.12's shape
        found = found[0] if len(found) == 1 else None
    return found[0] if found and found[0] is not None else None

rows = []
for action in parser._actions:
    if action.dest in dests:
        for option in action.option_strings:
            shortest = len(option)
            while shortest > 1 and resolves_to(option[:shortest - 1]) is action:
                shortest -= 1
            rows.append([option, shortest, action.dest])
print("ROWS:" + json.dumps(rows))
"""
# What each engine's variables own, by the parser's destination name.
OWNED_DESTS = {
    "sglang": {
        "model_path",
        "host",
        "port",
        "tp_size",
        "ep_size",
        "nnodes",
        "node_rank",
        "dist_init_addr",
        "served_model_name",
        "api_key",
    },
    "vllm": {
        "model",
        "host",
        "port",
        "tensor_parallel_size",
        "data_parallel_size",
        "data_parallel_size_local",
        "data_parallel_start_rank",
        "headless",
        "data_parallel_address",
        "data_parallel_rpc_port",
        "served_model_name",
        "api_key",
        "shutdown_timeout",
    },
}
OWNED_WHEN_SET_DESTS = {
    "sglang": {
        "context_length",
        "config",
        "revision",
        "speculative_algorithm",
        "speculative_draft_model_path",
        "speculative_draft_model_revision",
        "speculative_num_steps",
        "speculative_eagle_topk",
        "speculative_num_draft_tokens",
    },
    "vllm": {
        "max_model_len",
        "revision",
        "speculative_config",
        "enable_auto_tool_choice",
        "tool_call_parser",
        "reasoning_parser",
        "reasoning_parser_plugin",
    },
}


def test_owned_options_are_every_spelling_the_parser_gives_those_settings(engine):
    """entrypoint.engines.<engine>.OWNED_OPTIONS / OWNED_WHEN_SET list exactly the option
    strings of the settings the launcher owns, with the shortest abbreviation the pinned
    parser resolves to each; so every spelling it accepts is refused, and no other."""
    from entrypoint.engines import engine_module, owned_option

    name, python = engine
    module = engine_module(name)
    for table, dests in (
        (module.OWNED_OPTIONS, OWNED_DESTS[name]),
        (module.OWNED_WHEN_SET, OWNED_WHEN_SET_DESTS[name]),
    ):
        done = subprocess.run(
            [str(python), "-c", ABBREVIATIONS, name, ",".join(dests)],
            capture_output=True,
            text=True,
            env=engine_env(python),
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        rows = json.loads(done.stdout.split("ROWS:", 1)[1])
        assert {dest for *_, dest in rows} == dests
        assert sorted((option, shortest) for option, shortest, _ in rows) == sorted(
            (option, shortest) for option, shortest, *_ in table
        )
        for option, shortest, _ in rows:
            spellings = [option[:n] for n in range(shortest, len(option) + 1)]
            if option.startswith("--"):  # vLLM turns underscores into dashes
                spellings += [s.replace("-", "_").replace("__", "--", 1) for s in spellings]
            for spelling in spellings:
                assert owned_option(spelling, table) is not None, spelling
                assert owned_option(f"{spelling}=1", table) is not None, spelling
            # One character shorter, the parser resolves it to another option or to none:
            # refused only where that is an owned option of its own.
            shorter = owned_option(option[: shortest - 1], table)
            assert shorter is None or shorter[0] == option[: shortest - 1], option
