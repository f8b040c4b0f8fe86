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
    from ..plan import Plan

MODULE = "sglang.launch_server"
# Slow multi-node weight loading can exceed SGLang's default distributed timeout; its
# maintainers advise --dist-timeout 3600, the same on every node (docs/engines.md, "SGLang").
MULTI_NODE_DIST_TIMEOUT_S = 3600
# Environment the launcher sets for SGLang: none.
ENGINE_ENV: dict[str, str] = {}


def build_argv(plan: Plan) -> list[str]:
    """Return the SGLang command for ``plan``.

    The interpreter is the launcher's own (``sys.executable``): ``find_engine`` checked
    that SGLang is importable there.
    """
    argv = [
        sys.executable, "-m", MODULE,
        "--model-path", plan.model,
        "--trust-remote-code",
        "--attention-backend", "flashinfer",
        "--tp-size", str(plan.tensor_parallel_size),
        "--ep-size", str(plan.expert_parallel_size),
        "--host", plan.host,
        "--port", str(plan.port),
    ]
    if plan.served_model_name:
        argv += ["--served-model-name", plan.served_model_name]
    if plan.revision:  # DOWNLOAD=0: SGLang fetches the checkpoint at this revision
        argv += ["--revision", plan.revision]
    if plan.multi_node:
        argv += [
            "--nnodes", str(plan.nnodes),
            "--node-rank", str(plan.node_rank),
            "--dist-init-addr", join_host_port(plan.master_host, plan.master_port),
            "--dist-timeout", str(MULTI_NODE_DIST_TIMEOUT_S),
        ]
    if plan.draft_model is not None:  # set with MTP only
        argv += [
            "--speculative-algorithm", "NEXTN",
            "--speculative-draft-model-path", plan.draft_model,
            "--speculative-num-steps", "1",
            "--speculative-eagle-topk", "1",
            "--speculative-num-draft-tokens", "2",
        ]
        if plan.revision:
            # Without it, SGLang loads the draft at "main" (srt/arg_groups/speculative_hook.py,
            # handle_speculative_decoding): the served checkpoint at another commit.
            argv += ["--speculative-draft-model-revision", plan.revision]
    return [*argv, *plan.extra_args]


def find_engine() -> str | None:
    """Return where SGLang is importable from this interpreter, or ``None``."""
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
    """
    import argparse
    import contextlib
    import io

    from sglang.srt.server_args import ServerArgs

    from . import unknown_flags

    args = argv[argv.index(MODULE) + 1:]
    parser = argparse.ArgumentParser(prog="sglang.launch_server")
    ServerArgs.add_cli_args(parser)
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
