"""SGLang: plan -> ``python -m sglang.launch_server`` argv, and its real parser.

Flags follow the vendor guide, corrected for the pinned SGLang (images/matrix.toml) as
docs/engines.md ("SGLang") records: ``--enable-ep-moe`` is gone and replaced by ``--ep-size``;
canonical names ``--model-path``/``--tp-size``/``--ep-size``; ``--host 0.0.0.0`` in a
container; IPv6 dist-init addresses in brackets; MTP needs an explicit draft model path.
"""

from __future__ import annotations

import sys

from ..values import join_host_port

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plan import Plan
    from . import OwnedOption

MODULE = "sglang.launch_server"
# The Python package whose parser ``parser_rejections`` imports, and the modules it imports
# (``entrypoint.check`` imports them first, to refuse a broken install in one line).
PACKAGE = "sglang"
PARSER_MODULES = ("sglang.srt.server_args",)
# Slow multi-node weight loading can exceed SGLang's default distributed timeout; its
# maintainers advise --dist-timeout 3600, the same on every node (docs/engines.md, "SGLang").
MULTI_NODE_DIST_TIMEOUT_S = 3600
# Environment the launcher sets for SGLang: none.
ENGINE_ENV: dict[str, str] = {}
# Options the launcher sets from its variables, refused in EXTRA_ARGS and after the image
# name (entrypoint.plan). Option strings and aliases from srt/server_args.py
# (ServerArgs.add_cli_args); the shortest abbreviation each resolves from is argparse's
# prefix matching on that parser, checked by tests/launcher/test_engine_contract.py.
OWNED_OPTIONS: tuple[OwnedOption, ...] = (
    ("--model-path", 9, "MODEL", ""),
    ("--model", 7, "MODEL", ""),
    ("--host", 4, "HOST", ""),
    ("--port", 4, "PORT", ""),
    ("--tp-size", 4, "GPUS_PER_NODE NNODES", ""),
    ("--tensor-parallel-size", 4, "GPUS_PER_NODE NNODES", ""),
    ("--ep-size", 6, "GPUS_PER_NODE NNODES", ""),
    ("--expert-parallel-size", 10, "GPUS_PER_NODE NNODES", ""),
    ("--ep", 4, "GPUS_PER_NODE NNODES", ""),
    ("--nnodes", 4, "NNODES", ""),
    ("--node-rank", 5, "NODE_RANK", ""),
    ("--dist-init-addr", 8, "MASTER_IP MASTER_PORT", ""),
    ("--nccl-init-addr", 8, "MASTER_IP MASTER_PORT", ""),
    ("--served-model-name", 4, "SERVED_MODEL_NAME", ""),
    (
        "--api-key",
        4,
        "API_KEY",
        "The key never goes on a command line, where ps shows it: set API_KEY, or "
        "API_KEY_FILE to a file holding it.",
    ),
)
# Options of the parser whose names begin like a secret flag's (entrypoint.output.secret_flag)
# but take no secret: given exactly, the parser takes them before any abbreviation, so
# entrypoint.plan passes them. tests/launcher/test_engine_contract.py derives the list from
# the pinned parser.
NOT_SECRET_OPTIONS = ("--ssl-keyfile",)
# ... and those it sets only while their variable turns them on (entrypoint.plan,
# ``owning_variables_on``): CONTEXT_LENGTH or MODEL_REVISION set, an API key set, MTP on.
# Each is an argparse "store" option, whose last value wins: a second one would silently
# replace the launcher's.
OWNED_WHEN_SET: tuple[OwnedOption, ...] = (
    ("--context-length", 11, "CONTEXT_LENGTH", ""),
    ("--revision", 5, "MODEL_REVISION", ""),
    (
        "--config",
        6,
        "API_KEY API_KEY_FILE",
        "SGLang reads one --config file, and the launcher passes the API key in it.",
    ),
    ("--speculative-algorithm", 16, "MTP", ""),
    ("--speculative-draft-model-path", 27, "MTP", ""),
    ("--speculative-draft-model", 25, "MTP", ""),
    ("--speculative-draft-model-revision", 27, "MTP", ""),
    ("--speculative-num-steps", 19, "MTP", ""),
    ("--speculative-eagle-topk", 16, "MTP", ""),
    ("--speculative-num-draft-tokens", 19, "MTP", ""),
)
# Options the launcher emits with a fixed value, tied to no variable: not refused, so a
# deployment can change them on purpose (argparse keeps the last value; the dry run shows
# both). Nothing else the launcher does (health, preflight) reads them.
FIXED_OPTIONS = (
    "--trust-remote-code",
    "--attention-backend",
    "--enable-metrics",
    "--dist-timeout",
)


def build_argv(plan: Plan) -> list[str]:
    """Return the SGLang command for ``plan``.

    The interpreter is the launcher's own (``sys.executable``): ``find_engine`` checked
    that SGLang is importable there. SGLang 0.5.23 has neither a LongCat tool parser nor a
    reasoning parser for ``<longcat_think>`` (docs/engines.md, "Serving features"): tool
    calls are off (``entrypoint.plan`` refuses TOOL_CALLS=on), and a Thinking model's
    reasoning stays in the content. SGLang drains in-flight requests on SIGTERM without a
    time limit, so ``shutdown_timeout_s`` has no flag here.
    """
    argv = [
        sys.executable,
        "-m",
        MODULE,
        "--model-path",
        plan.model,
        "--trust-remote-code",
        "--attention-backend",
        "flashinfer",
        "--tp-size",
        str(plan.tensor_parallel_size),
        "--ep-size",
        str(plan.expert_parallel_size),
        "--host",
        plan.host,
        "--port",
        str(plan.port),
        # Prometheus metrics on GET /metrics (off by default in SGLang; docs/engines.md,
        # "Serving features"). /metrics stays open with an API key (srt/utils/auth.py).
        "--enable-metrics",
    ]
    if plan.served_model_name:
        argv += ["--served-model-name", plan.served_model_name]
    if plan.revision:  # DOWNLOAD=0: SGLang fetches the checkpoint at this revision
        argv += ["--revision", plan.revision]
    if plan.context_length is not None:
        argv += ["--context-length", str(plan.context_length)]
    if plan.api_key_config is not None:
        # The key in a YAML file SGLang merges into its arguments (srt/server_args.py,
        # prepare_server_args; entrypoint.apikey): never on the command line.
        argv += ["--config", plan.api_key_config]
    if plan.multi_node:
        argv += [
            "--nnodes",
            str(plan.nnodes),
            "--node-rank",
            str(plan.node_rank),
            "--dist-init-addr",
            join_host_port(plan.master_host, plan.master_port),
            "--dist-timeout",
            str(MULTI_NODE_DIST_TIMEOUT_S),
        ]
    if plan.draft_model is not None:  # set with MTP only
        argv += [
            "--speculative-algorithm",
            "NEXTN",
            "--speculative-draft-model-path",
            plan.draft_model,
            "--speculative-num-steps",
            "1",
            "--speculative-eagle-topk",
            "1",
            "--speculative-num-draft-tokens",
            "2",
        ]
        if plan.revision:
            # Without it, SGLang loads the draft at "main" (srt/arg_groups/speculative_hook.py,
            # handle_speculative_decoding): the served checkpoint at another commit.
            argv += ["--speculative-draft-model-revision", plan.revision]
    return [*argv, *plan.extra_args]


def find_engine(env: Mapping[str, str]) -> str | None:
    """Return where SGLang is importable from this interpreter, or ``None``.

    SGLang runs as ``sys.executable -m sglang.launch_server``: this interpreter's import
    path decides, whatever ``env`` holds.
    """
    import importlib.util

    spec = importlib.util.find_spec("sglang")
    return None if spec is None else (spec.origin or "sglang")


def installed_version() -> str | None:
    """Return the installed SGLang distribution's version, or ``None``."""
    from . import distribution_version

    return distribution_version("sglang")


def parser_rejections(argv: list[str]) -> list[str]:
    """Check ``argv`` (as from ``build_argv``) with SGLang's own parser.

    Builds the parser the way ``sglang.launch_server`` does (docs/engines.md,
    "Checking a command without a GPU"): ``argparse.ArgumentParser()``,
    ``ServerArgs.add_cli_args(parser)``, then
    ``parse_args``. Imports SGLang, which takes seconds: never on the launch path.

    Returns:
        One line per rejected flag or value; empty when the parser accepts ``argv``.

    Raises:
        EngineNotImportable: building the parser failed (exit status 127).
    """
    import argparse
    import contextlib
    import io

    from sglang.srt.server_args import ServerArgs

    from ..errors import EngineNotImportable
    from . import unknown_flags

    args = argv[argv.index(MODULE) + 1 :]
    parser = argparse.ArgumentParser(prog="sglang.launch_server")
    try:
        ServerArgs.add_cli_args(parser)
    except Exception as error:  # a broken install: one message (exit 127), not a traceback
        raise EngineNotImportable(
            "sglang", "sglang.srt.server_args (ServerArgs.add_cli_args)", error
        ) from None
    known = set(parser._option_string_actions)  # argparse's table of option strings
    problems = unknown_flags(args, known, f"sglang {installed_version()}")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(args)
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        problems.append("by the parser: " + (message[-1] if message else "refused"))
    return problems
