"""compose/.env.example documents every variable, with the defaults compose really uses.

It is generated (``python3 -m tests.compose.env_example``) from the launcher's variable
definitions; these tests fail when it drifts from them or from the compose files.
"""

from __future__ import annotations

import re

import pytest
import yaml

from entrypoint.engines import build_argv
from entrypoint.plan import resolve_plan
from entrypoint.settings import VARIABLES, load_settings

from . import env_example
from .composeutil import ENV_EXAMPLE, SERVICE, SINGLE, TWO, config_variables, run_compose

# `docker compose config` needs the compose plugin that .ci/setup-docker installs.
pytestmark = pytest.mark.docker

HEADING = re.compile(r"^# ([A-Z][A-Z0-9_]*): ", re.MULTILINE)
ASSIGNMENT = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)


def documented() -> list[str]:
    return HEADING.findall(ENV_EXAMPLE.read_text())


def test_in_sync_with_the_generator():
    assert ENV_EXAMPLE.read_text() == env_example.render(), (
        "compose/.env.example is stale: run "
        "`python3 -m tests.compose.env_example > compose/.env.example`"
    )


def test_every_launcher_variable_is_documented_once():
    names = documented()
    assert len(names) == len(set(names))
    for var in VARIABLES:
        assert var.name in names, var.name


def test_every_line_is_a_comment():
    """Nothing is set by copying the file: each variable keeps its default until edited."""
    for line in ENV_EXAMPLE.read_text().splitlines():
        assert line == "" or line.startswith("#"), line


def test_hf_token_has_no_assignment_line():
    assigned = dict(ASSIGNMENT.findall(ENV_EXAMPLE.read_text()))
    assert "HF_TOKEN" not in assigned
    assert "HF_HOME" not in assigned  # the compose files fix it to the mount target
    assert "DRY_RUN" not in assigned  # not passed to the service
    assert "VLLM_API_KEY" not in assigned  # a secret: from the shell only


@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
def test_every_compose_variable_is_documented_with_its_default(path):
    names = set(documented())
    own = {name: default for name, default, _ in env_example.COMPOSE_VARIABLES}
    for name, info in config_variables([path]).items():
        if name == "HOME":
            continue
        assert name in names, f"{path.name} reads {name}, .env.example does not say so"
        if name in own:
            # .env.example spells nested defaults without their own fallbacks.
            compose_default = re.sub(r"\$\{(\w+):-[^}]*\}", r"${\1}", info["DefaultValue"])
            assert own[name] == compose_default, name
        elif info["Required"]:
            assert "required" in env_example.COMPOSE_NOTES[name][0], name
        elif info["DefaultValue"]:
            shown = env_example.COMPOSE_NOTES[name][0]
            assert info["DefaultValue"] in shown, name


@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
def test_every_container_variable_is_documented(path):
    env = {"NODE_RANK": "0", "MASTER_IP": "10.0.0.1"} if path == TWO else {}
    out = run_compose([path], "config", env=env).stdout
    container = yaml.safe_load(out)["services"][SERVICE]["environment"]
    names = set(documented())
    for name in container:
        assert name in names, name


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_uncommented_defaults_change_nothing(tmp_path, engine):
    """Uncommenting every default that .env.example shows gives the same command."""
    text = ENV_EXAMPLE.read_text()
    uncommented = re.sub(r"^#([A-Z][A-Z0-9_]*=)", r"\1", text, flags=re.MULTILINE)
    env_file = tmp_path / ".env"
    env_file.write_text(uncommented)
    argvs = []
    for source in (ENV_EXAMPLE, env_file):
        out = run_compose([SINGLE], "config", env={"ENGINE": engine}, env_file=source).stdout
        env = {
            k: v
            for k, v in yaml.safe_load(out)["services"][SERVICE]["environment"].items()
            if v is not None
        }
        argvs.append(build_argv(resolve_plan(load_settings(env, installed=lambda: [engine]))))
    assert argvs[0] == argvs[1]
