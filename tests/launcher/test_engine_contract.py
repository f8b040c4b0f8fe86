"""Contract tests: our commands against the real, pinned engines' own parsers.

Each engine lives in its own cached virtual environment (tests/engine_venvs.py; .ci/setup
creates them). A missing environment fails these tests: it is never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.engine_venvs import pinned_versions, venv_python
from tests.launcher.support import (OUR_CASES, REPO, SERVING_CASES, SHARED_CASES, clean_env,
                                    load_cases)

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
    return subprocess.run([str(python), "-m", "entrypoint", "check", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=900)


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
SECRET_ENDINGS = ("password", "secret", "api-key", "access-key", "secret-key", "hf-token",
                  "auth-token", "access-token")


def test_every_secret_option_of_the_engine_is_redacted(engine):
    """Options named like a secret (SECRET_ENDINGS) are redacted in printed commands, in
    every spelling (entrypoint.output.SECRET_FLAGS)."""
    from entrypoint.output import is_secret_flag, redact_argv

    name, python = engine
    done = subprocess.run([str(python), "-c", OPTIONS, name], capture_output=True, text=True,
                          env=engine_env(python), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    options = done.stdout.split("OPTIONS:\n", 1)[1].split()
    secret = [o for o in options if o.startswith("--") and o.endswith(SECRET_ENDINGS)]
    assert "--api-key" in secret
    for option in secret:
        assert is_secret_flag(option), f"{name}'s {option} is not redacted"
        assert is_secret_flag(option.replace("-", "_").replace("__", "--", 1))
        assert redact_argv([option, "s3cret"]) == [option, "***"]


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
    result = check(python, engine_env(python, {"ENGINE": name,
                                               "EXTRA_ARGS": "--enable-ep-moe"}), "--all")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rejected --enable-ep-moe" in result.stdout
    assert "0 accepted" in result.stdout


def test_every_case_of_the_yaml_files_is_accepted(engine):
    name, python = engine
    cases = [c for path in (SHARED_CASES, SERVING_CASES, OUR_CASES) for c in load_cases(path)
             if "error" not in c["expect"] and str(c["env"].get("ENGINE", "")).lower() == name]
    assert cases
    envs = [dict(c["env"], PATH=os.environ["PATH"]) for c in cases]
    probe = subprocess.run([str(python), "-m", "tests.launcher.contract_probe"],
                           input=json.dumps(envs), env=engine_env(python), cwd=REPO,
                           capture_output=True, text=True, timeout=900)
    assert probe.returncode == 0, probe.stderr[-3000:]
    results = json.loads(probe.stdout.splitlines()[-1])
    for case, result in zip(cases, results):
        assert result["status"] == 0, f"{case['name']}: {result['report']}"


@pytest.mark.parametrize("engine_name, planted", [
    ("sglang", "--tp 8"),                        # an argparse abbreviation of --tp-size
    ("sglang", "--attention-backend no-such"),   # a value outside the parser's choices
    ("vllm", "--tensor-parallel-size eight"),    # a value the parser refuses
    ("vllm", "--speculative-config '{\"method\":\"longcat_flash_mtp\",\"num_speculative_tokens\":1}'"),
])
def test_checks_beyond_unknown_flags(engine_name, planted):
    python = engine_python(engine_name)
    result = check(python, engine_env(python, {"ENGINE": engine_name, "EXTRA_ARGS": planted}))
    assert result.returncode == 1, result.stdout + result.stderr
    assert planted.split()[0] in result.stdout.split("rejected", 1)[1]
