"""vLLM: plan -> ``vllm serve MODEL`` argv, and its real parser.

Flags follow the vendor guide, corrected for the pinned vLLM (images/matrix.toml) as
docs/engines.md ("vLLM") records: nodes ranked 1 and up are ``--headless`` with
``--data-parallel-start-rank``; node 0 passes no start rank (vllm/engine/arg_utils.py,
"autoswitch to data_parallel_external_lb"); MTP is ``--speculative-config`` with the
method ``mtp``, as ``longcat_flash_mtp`` is deprecated and rewritten.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plan import Plan
    from . import OwnedOption

PROGRAM = "vllm"
# The Python package whose parser ``parser_rejections`` imports, and the modules it imports
# (``entrypoint.check`` imports them first, to refuse a broken install in one line).
PACKAGE = "vllm"
PARSER_MODULES = (
    "vllm",
    "vllm.entrypoints.cli.serve",
    "vllm.utils.argparse_utils",
    "vllm.reasoning",
    "vllm.tool_parsers",
    "vllm.config.speculative",
)
# The current spelling. The pinned vLLM still accepts "longcat_flash_mtp" but logs "method
# `%s` is deprecated and replaced with mtp" (vllm/config/speculative.py,
# SpeculativeConfig.__post_init__).
SPECULATIVE_CONFIG = {"method": "mtp", "num_speculative_tokens": 1}
# vLLM waits VLLM_ENGINE_READY_TIMEOUT_S (vllm/envs.py, default 600 s) for its engine
# cores to load, which is short for a 560B checkpoint (docs/engines.md, "vLLM").
ENGINE_ENV = {"VLLM_ENGINE_READY_TIMEOUT_S": "3600"}
# The tool parser vLLM registers for LongCat-Flash (vllm/tool_parsers/__init__.py, "longcat":
# <longcat_tool_call> JSON). Without --enable-auto-tool-choice and a parser, a request with
# tool_choice "auto" gets HTTP 400 (docs/engines.md, "Serving features").
TOOL_CALL_PARSER = "longcat"
# Our reasoning parser for the Thinking models' <longcat_think> tags: a file shipped in this
# package that the launcher never imports, and vLLM imports by path
# (--reasoning-parser-plugin; vllm/utils/import_utils.py, import_plugin).
REASONING_PARSER = "longcat_think"
REASONING_PARSER_PLUGIN = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "vllm_longcat_reasoning.py"
)
# Options the launcher sets from its variables, refused in EXTRA_ARGS and after the image
# name (entrypoint.plan). Option strings and short forms from vllm/engine/arg_utils.py and
# vllm/entrypoints/common/cli_args.py as `vllm serve` builds them; the shortest
# abbreviation each resolves from is argparse's prefix matching on that parser, checked by
# tests/launcher/test_engine_contract.py. The model is also vLLM's positional argument.
OWNED_OPTIONS: tuple[OwnedOption, ...] = (
    ("--model", 7, "MODEL", ""),
    ("--host", 4, "HOST", ""),
    ("--port", 5, "PORT", ""),
    ("--tensor-parallel-size", 4, "GPUS_PER_NODE", ""),
    ("-tp", 2, "GPUS_PER_NODE", ""),
    ("--data-parallel-size", 20, "NNODES", ""),
    ("-dp", 3, "NNODES", ""),
    ("--data-parallel-size-local", 21, "NNODES", ""),
    ("-dpl", 4, "NNODES", ""),
    ("--data-parallel-start-rank", 18, "NODE_RANK", ""),
    ("-dpr", 4, "NODE_RANK", ""),
    ("--headless", 5, "NODE_RANK", ""),
    ("--data-parallel-address", 17, "MASTER_IP", ""),
    ("-dpa", 4, "MASTER_IP", ""),
    ("--data-parallel-rpc-port", 18, "MASTER_PORT", ""),
    ("-dpp", 4, "MASTER_PORT", ""),
    ("--served-model-name", 5, "SERVED_MODEL_NAME", ""),
    (
        "--api-key",
        7,
        "API_KEY",
        "The key never goes on a command line, where ps shows it: set API_KEY, or "
        "API_KEY_FILE to a file holding it.",
    ),
    ("--shutdown-timeout", 5, "SHUTDOWN_TIMEOUT_S", ""),
)
# Options of the parser whose names begin like a secret flag's (entrypoint.output.secret_flag)
# but take no secret: given exactly, the parser takes them before any abbreviation, so
# entrypoint.plan passes them. tests/launcher/test_engine_contract.py derives the list from
# the pinned parser.
NOT_SECRET_OPTIONS = ("--ssl-keyfile",)
# ... and those it sets only while their variable turns them on (entrypoint.plan,
# ``owning_variables_on``): CONTEXT_LENGTH or MODEL_REVISION set, MTP on, TOOL_CALLS on
# (vLLM's default), VARIANT=thinking. Each is an argparse "store" option, or a boolean pair
# whose last spelling wins, so a second one would silently replace the launcher's.
OWNED_WHEN_SET: tuple[OwnedOption, ...] = (
    ("--max-model-len", 7, "CONTEXT_LENGTH", ""),
    ("--revision", 5, "MODEL_REVISION", ""),
    ("--speculative-config", 7, "MTP", ""),
    ("-sc", 2, "MTP", ""),
    ("--enable-auto-tool-choice", 10, "TOOL_CALLS", ""),
    ("--disable-auto-tool-choice", 12, "TOOL_CALLS", ""),
    ("--tool-call-parser", 8, "TOOL_CALLS", ""),
    ("--reasoning-parser", 18, "VARIANT", ""),
    ("--reasoning-parser-plugin", 19, "VARIANT", ""),
)
# Options the launcher emits with a fixed value, tied to no variable: not refused, so a
# deployment can change them on purpose (argparse keeps the last value; the dry run shows
# both). Nothing else the launcher does (health, preflight) reads them.
FIXED_OPTIONS = ("--trust-remote-code", "--enable-expert-parallel")


def build_argv(plan: Plan) -> list[str]:
    """Return the vLLM command for ``plan``.

    vLLM serves Prometheus metrics on ``/metrics`` without a flag, and reads the API key
    from ``VLLM_API_KEY`` (``entrypoint.apikey``), so neither appears here.
    """
    argv = [
        PROGRAM,
        "serve",
        plan.model,
        "--trust-remote-code",
        "--enable-expert-parallel",
        "--tensor-parallel-size",
        str(plan.tensor_parallel_size),
    ]
    if not plan.headless:
        argv += ["--host", plan.host, "--port", str(plan.port)]
    if plan.served_model_name:
        argv += ["--served-model-name", plan.served_model_name]
    if plan.revision:  # DOWNLOAD=0: vLLM fetches the checkpoint at this revision
        argv += ["--revision", plan.revision]
    if plan.tool_calls:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", TOOL_CALL_PARSER]
    if plan.variant == "thinking":
        # Every node: headless nodes import the plugin too, for structured outputs
        # (vllm/entrypoints/cli/serve.py, run_headless).
        argv += [
            "--reasoning-parser-plugin",
            REASONING_PARSER_PLUGIN,
            "--reasoning-parser",
            REASONING_PARSER,
        ]
    if plan.context_length is not None:
        argv += ["--max-model-len", str(plan.context_length)]
    # In-flight requests get this long after SIGTERM (default 0: aborted; vllm/v1/engine/
    # core.py, EngineCore._handle_shutdown).
    argv += ["--shutdown-timeout", str(plan.shutdown_timeout_s)]
    if plan.multi_node:
        argv += [
            "--data-parallel-size",
            str(plan.data_parallel_size),
            "--data-parallel-size-local",
            "1",
            "--data-parallel-address",
            plan.master_host,
            "--data-parallel-rpc-port",
            str(plan.master_port),
        ]
        if plan.headless:
            argv += ["--headless", "--data-parallel-start-rank", str(plan.node_rank)]
    if plan.draft_model is not None:  # set with MTP only
        import json

        config: dict[str, object] = dict(SPECULATIVE_CONFIG)
        if plan.revision:
            # The MTP draft is a model config of its own, at its own revision, default main
            # (vllm/config/speculative.py, SpeculativeConfig.revision).
            config["revision"] = plan.revision
        argv += ["--speculative-config", json.dumps(config, separators=(",", ":"))]
    return [*argv, *plan.extra_args]


def find_engine(env: Mapping[str, str]) -> str | None:
    """Return the path of the ``vllm`` command on ``env``'s ``PATH``, or ``None``.

    The same search ``os.execvpe`` makes with the environment the engine gets. Not
    ``shutil.which``: importing shutil (with bz2, lzma and fnmatch) costs more than the rest
    of the launcher's start-up.
    """
    for folder in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", PROGRAM)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def installed_version() -> str | None:
    """Return the installed vLLM distribution's version, or ``None``."""
    from . import distribution_version

    return distribution_version("vllm")


def parser_rejections(argv: list[str]) -> list[str]:
    """Check ``argv`` (as from ``build_argv``) with vLLM's own parser and validation.

    Follows ``vllm serve`` on a CPU-only machine (docs/engines.md, "Checking a command
    without a GPU"):
    ``VLLM_TARGET_DEVICE=cpu`` unless set, ``ServeSubcommand().subparser_init`` on a
    ``FlexibleArgumentParser``, ``parse_args(["serve", ...])``, ``validate`` and
    ``AsyncEngineArgs.from_cli_args``; then the parser plugins and names, as the API
    server checks them before it serves (``_check_parser_names``). A
    ``--speculative-config`` method that vLLM would rewrite with a deprecation warning
    (any MTP method but ``mtp``, from
    ``vllm.config.speculative.MTPModelTypes``) is reported too. Imports vLLM: never on
    the launch path.

    Returns:
        One line per rejected flag or value; empty when vLLM accepts ``argv``.
    """
    import contextlib
    import io

    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm import AsyncEngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from . import unknown_flags

    args = argv[argv.index("serve") :]
    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(dest="subparser")
    command = ServeSubcommand()
    serve = command.subparser_init(subparsers)
    known = set(serve._option_string_actions)  # argparse's table of option strings
    # vLLM normalises underscores to dashes (docs/engines.md, "vLLM"); compare dashed names.
    problems = unknown_flags(
        [a.replace("_", "-") if a.startswith("--") else a for a in args[2:]],
        known,
        f"vllm {installed_version()}",
    )
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            namespace = parser.parse_args(args)
            command.validate(namespace)
            AsyncEngineArgs.from_cli_args(namespace)
            _check_parser_names(namespace)
        problems += _deprecated_speculative_method(getattr(namespace, "speculative_config", None))
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        problems.append("by the parser: " + (message[-1] if message else "refused"))
    except Exception as exc:  # vLLM's own validation errors (ValueError, TypeError, ...)
        problems.append(f"by vLLM's validation: {type(exc).__name__}: {exc}")
    return problems


def _check_parser_names(namespace: object) -> None:
    """Import the tool and reasoning parser plugins and check the parser names, as the API
    server does before it serves (0.33.0: vllm/entrypoints/common/cli_args.py,
    ``init_parser_plugin`` and ``validate_api_server_args``; 0.32.0 kept them in
    vllm/entrypoints/launchers/launcher.py). Those functions moved between releases, so
    this takes the same steps through the registries they call, which both releases
    define alike: ``vllm.tool_parsers.ToolParserManager`` and
    ``vllm.reasoning.ReasoningParserManager`` (``import_*_parser``, ``list_registered``).
    Our reasoning parser plugin is loaded from its file here too, so a plugin that vLLM
    cannot import or that registers no ``REASONING_PARSER`` fails the check.

    Raises:
        KeyError: a tool or reasoning parser name that no parser registered.
    """
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager

    tool_plugin = getattr(namespace, "tool_parser_plugin", None) or ""
    if len(tool_plugin) > 3:  # vLLM's own test of the option
        ToolParserManager.import_tool_parser(tool_plugin)
    reasoning_plugin = getattr(namespace, "reasoning_parser_plugin", None) or ""
    if len(reasoning_plugin) > 3:
        ReasoningParserManager.import_reasoning_parser(reasoning_plugin)
    tool = getattr(namespace, "tool_call_parser", None)
    if (
        getattr(namespace, "enable_auto_tool_choice", False)
        and tool not in ToolParserManager.list_registered()
    ):
        raise KeyError(f"invalid tool call parser: {tool}")
    name = getattr(namespace, "reasoning_parser", None)
    if name and name not in ReasoningParserManager.list_registered():
        raise KeyError(
            f"invalid reasoning parser: {name} (--reasoning-parser-plugin "
            f"{reasoning_plugin or None} registers none)"
        )


def _deprecated_speculative_method(config: object) -> list[str]:
    """Describe a speculative method vLLM accepts only with a deprecation warning."""
    from typing import get_args

    from vllm.config.speculative import MTPModelTypes

    method = (config or {}).get("method") if isinstance(config, dict) else None
    if method in get_args(MTPModelTypes) and method != "mtp":
        return [
            f"--speculative-config: method {method!r} is deprecated in vllm "
            f"{installed_version()}; use 'mtp'"
        ]
    return []
