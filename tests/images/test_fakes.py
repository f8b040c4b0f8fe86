"""The fake engines are faithful where it matters: every option their parsers define is
defined the same way by the pinned real engine (option strings, action, type, nargs,
choices, default), so the in-image ``check`` cannot pass on a fake where it would fail on
the real engine for our plans. The real parsers run in the cached engine environments
(tests/engine_venvs.py; .ci/setup creates them); a missing one is a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import engine_venvs
from tests.fakes.engines import SITE

# The fakes are compared with the real engines' parsers, in their venvs.
pytestmark = pytest.mark.engines

# Prints {option string: its definition} for the engine's `serve` parser, as JSON.
DUMP = r"""
import argparse, json, os, sys
engine = sys.argv[1]
if engine == "sglang":
    from sglang.srt.server_args import ServerArgs
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
else:
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    top = FlexibleArgumentParser(prog="vllm")
    parser = ServeSubcommand().subparser_init(top.add_subparsers(dest="subparser"))
table = {}
for option, action in parser._option_string_actions.items():
    table[option] = {
        "option_strings": action.option_strings, "dest": action.dest,
        "action": type(action).__name__, "nargs": action.nargs,
        "type": getattr(action.type, "__name__", None),
        "choices": list(action.choices) if action.choices else None,
        "default": repr(action.default), "required": action.required,
    }
print("JSON:" + json.dumps(table))
"""


def dump(python: str, engine: str, extra_env: dict | None = None) -> dict:
    """Run DUMP with ``python``; return the option table."""
    env = dict(os.environ, **(extra_env or {}))
    done = subprocess.run(
        [python, "-c", DUMP, engine], capture_output=True, text=True, env=env, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("JSON:")]
    assert done.returncode == 0 and lines, f"{python} could not dump {engine}:\n{done.stderr}"
    return json.loads(lines[-1][len("JSON:") :])


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def tables(request):
    engine = request.param
    python = engine_venvs.venv_python(engine)
    if not Path(python).exists():
        pytest.fail(
            f"the pinned {engine} environment is missing at {python}: run "
            "`python -m tests.engine_venvs` (.ci/setup does)",
            pytrace=False,
        )
    fake = dump(sys.executable, engine, {"PYTHONPATH": str(SITE), "FAKE_ENGINE_REJECT": ""})
    return engine, fake, dump(str(python), engine)


def test_every_fake_option_is_defined_exactly_as_the_real_engine_defines_it(tables):
    engine, fake, real = tables
    assert fake, f"the fake {engine} defines no options"
    differences = {}
    for option, definition in fake.items():
        if option in ("-h", "--help"):
            continue
        if option not in real:
            differences[option] = "the real engine has no such option"
        elif definition != real[option]:
            differences[option] = {
                k: (definition[k], real[option][k])
                for k in definition
                if definition[k] != real[option][k]
            }
    assert not differences, (
        f"fake {engine} differs from the real one (fake, real): {json.dumps(differences, indent=1)}"
    )


def test_options_the_engines_dropped_are_absent_from_fake_and_real(tables):
    engine, fake, real = tables
    dropped = {"sglang": ["--enable-ep-moe"], "vllm": []}[engine]
    for option in dropped:
        assert option not in real and option not in fake


def test_fake_reject_switch_removes_exactly_the_named_option():
    fake = dump(
        sys.executable, "sglang", {"PYTHONPATH": str(SITE), "FAKE_ENGINE_REJECT": "--ep-size"}
    )
    assert "--ep-size" not in fake and "--expert-parallel-size" not in fake
    assert "--tp-size" in fake


def test_fake_vllm_mtp_methods_are_real_ones():
    probe = (
        "from typing import get_args; from vllm.config.speculative import MTPModelTypes;"
        " print('JSON:' + __import__('json').dumps(list(get_args(MTPModelTypes))))"
    )
    names = {}
    for label, python, env in (
        ("fake", sys.executable, {"PYTHONPATH": str(SITE)}),
        ("real", str(engine_venvs.venv_python("vllm")), {"VLLM_TARGET_DEVICE": "cpu"}),
    ):
        done = subprocess.run(
            [python, "-c", probe],
            capture_output=True,
            text=True,
            env=dict(os.environ, **env),
            timeout=600,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("JSON:")]
        assert done.returncode == 0 and lines, done.stderr
        names[label] = set(json.loads(lines[-1][5:]))
    assert "mtp" in names["fake"] and "longcat_flash_mtp" in names["fake"]
    assert names["fake"] <= names["real"]


# Prints the tool parser names the check accepts, the reasoning parsers registered once our
# plugin is loaded, and DeltaMessage's fields; the same probe runs on the fake and the real.
PARSERS = r"""
import json, os, sys
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
from vllm.entrypoints.generate.base.protocol import DeltaMessage
from vllm.reasoning import ReasoningParserManager
from vllm.tool_parsers import ToolParserManager
tools = ToolParserManager.list_registered()
ReasoningParserManager.import_reasoning_parser(sys.argv[1])
fields = getattr(DeltaMessage, "model_fields", None) or DeltaMessage.__dataclass_fields__
print("JSON:" + json.dumps({"tools": sorted(tools), "fields": sorted(fields),
                            "reasoning": ReasoningParserManager.list_registered()}))
"""


def test_fake_vllm_parser_registries_are_real_ones():
    """What the launcher's check uses of vLLM's parser plugins (entrypoint/engines/vllm.py,
    _check_parser_names) is in the fake as in the pinned vLLM, and our reasoning parser
    plugin registers in both."""
    from entrypoint.engines.vllm import REASONING_PARSER, REASONING_PARSER_PLUGIN

    found = {}
    for label, python, env in (
        ("fake", sys.executable, {"PYTHONPATH": str(SITE)}),
        ("real", str(engine_venvs.venv_python("vllm")), {}),
    ):
        done = subprocess.run(
            [python, "-c", PARSERS, REASONING_PARSER_PLUGIN],
            capture_output=True,
            text=True,
            env=dict(os.environ, **env),
            timeout=600,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("JSON:")]
        assert done.returncode == 0 and lines, done.stderr[-3000:]
        found[label] = json.loads(lines[-1][5:])
    fake, real = found["fake"], found["real"]
    assert "longcat" in fake["tools"] and set(fake["tools"]) <= set(real["tools"])
    assert set(fake["fields"]) <= set(real["fields"])
    assert REASONING_PARSER in fake["reasoning"] and REASONING_PARSER in real["reasoning"]
