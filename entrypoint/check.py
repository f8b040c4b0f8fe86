"""``python -m entrypoint check``: run our commands through the installed engine's parser.

Validates either the current configuration, or (``--all``) every standard plan for the
engine: {fp8, bf16} x {each node rank of the precision's default node count} x {MTP off,
on} x {VARIANT chat, thinking} x {TOOL_CALLS on, off where the engine has a LongCat tool
parser; off elsewhere}. The images run ``check --all`` before they are tagged (build.py),
so a launcher that no longer matches its engine never ships.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from .engines import build_argv, engine_module
from .errors import EngineNotImportable, EngineNotInstalled
from .launch import command_sources, configured_secrets, refuse_secrets_on_command_line
from .output import command_line, say
from .plan import resolve_plan
from .platforms import PLATFORM_PREFIXES
from .settings import DEFAULT_NNODES, PRECISIONS, VARIANTS, load_settings

# A documentation address (RFC 5737), used when a standard multi-node plan needs one and
# MASTER_IP is unset: the parser only needs its form, nothing is sent to it.
PLACEHOLDER_MASTER_IP = "192.0.2.10"
# Variables the standard plans set themselves; platform variables are dropped too, so
# the plans do not depend on where the check runs.
_PLAN_VARIABLES = ("PRECISION", "NNODES", "NODE_RANK", "MTP", "VARIANT", "TOOL_CALLS")
# TOOL_CALLS values per engine: SGLang has no LongCat tool parser, so on is refused there.
_TOOL_CALLS = {"sglang": ("off",), "vllm": ("on", "off")}


def standard_environments(
    env: Mapping[str, str], engine: str = "vllm"
) -> list[tuple[str, dict[str, str]]]:
    """Return (label, environment) for every standard plan of ``engine``, based on ``env``.

    Everything else in ``env`` (ENGINE, MODEL, GPUS_PER_NODE, EXTRA_ARGS, ...) is kept.
    """
    base = {
        k: v
        for k, v in env.items()
        if k not in _PLAN_VARIABLES and not k.startswith(PLATFORM_PREFIXES)
    }
    if not base.get("MASTER_IP", "").strip():
        base["MASTER_IP"] = PLACEHOLDER_MASTER_IP
    cases = []
    for precision in PRECISIONS:
        nnodes = DEFAULT_NNODES[precision]
        for rank in range(nnodes):
            for mtp in ("off", "on"):
                for variant in VARIANTS:
                    for tools in _TOOL_CALLS[engine]:
                        label = (
                            f"{precision} node {rank} of {nnodes}, MTP {mtp}, {variant}, "
                            f"tool calls {tools}"
                        )
                        cases.append(
                            (
                                label,
                                dict(
                                    base,
                                    PRECISION=precision,
                                    NODE_RANK=str(rank),
                                    MTP=mtp,
                                    VARIANT=variant,
                                    TOOL_CALLS=tools,
                                ),
                            )
                        )
    return cases


def import_parser_modules(engine: str, modules: Sequence[str]) -> None:
    """Import ``modules`` (the engine module's ``PARSER_MODULES``), which ``parser_rejections``
    needs, so that a broken install is one message rather than a traceback.

    A package can be found (``find_spec``) and still not import: a partial install lacks a
    subpackage (``ModuleNotFoundError``), a wheel built for CUDA lacks its shared library on
    this host (``ImportError`` or ``OSError`` from the loader), or its start-up code fails
    (``RuntimeError: Failed to infer device type``, any other exception).

    Raises:
        EngineNotImportable: naming the engine, the module and the exception (exit 127).
    """
    import importlib
    import os

    if engine == "vllm":  # as parser_rejections: vLLM's CPU platform where no GPU is
        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # whatever the engine's import raises: one message
            raise EngineNotImportable(engine, name, error) from None


def run_check(env: Mapping[str, str], all_plans: bool, out: TextIO) -> int:
    """Check one or all plans with the real parser of the engine ``env`` selects.

    Args:
        env: the environment (ENGINE and the rest, as for a launch).
        all_plans: check every standard plan instead of the one ``env`` describes.
        out: where the report goes (one line per plan, then each rejection).

    Returns:
        0 when the engine accepts every command, 1 when it rejects any flag.

    Raises:
        ConfigError: ``env`` is invalid, or would put a secret on the engine's command
            line (``entrypoint.launch.refuse_secrets_on_command_line``).
        EngineNotInstalled: the engine is not installed here.
        EngineNotImportable: a module of its parser does not import (``import_parser_modules``).
    """
    settings = load_settings(env)
    engine = settings["ENGINE"]
    module = engine_module(engine)
    cases = (
        standard_environments(env, engine) if all_plans else [("current configuration", dict(env))]
    )
    commands = []
    for label, case_env in cases:  # the configuration first, as a launch does
        plan = resolve_plan(load_settings(case_env))
        argv = build_argv(plan)
        secrets = configured_secrets(plan, case_env, dry_run=True)
        refuse_secrets_on_command_line(argv, secrets, command_sources(case_env, ()))
        commands.append((label, argv))
    import importlib.util
    import sys

    if module.find_engine(env) is None:
        raise EngineNotInstalled(engine, "its command")
    if importlib.util.find_spec(module.PACKAGE) is None:  # the command without its package
        raise EngineNotInstalled(engine, f"the {module.PACKAGE} Python package in {sys.executable}")
    import_parser_modules(engine, module.PARSER_MODULES)
    say(f"checking {len(commands)} plan(s) against {engine} {module.installed_version()}", out)
    failed = 0
    for label, argv in commands:
        problems = module.parser_rejections(argv)
        say(f"{'FAIL' if problems else 'ok  '} {label}: {command_line(argv)}", out)
        for problem in problems:
            say(f"     rejected {problem}", out)
        failed += bool(problems)
    say(f"{len(commands) - failed} accepted, {failed} rejected", out)
    return 1 if failed else 0
