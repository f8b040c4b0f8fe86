"""vLLM: plan -> ``vllm serve MODEL`` argv, and its real parser.

Flags follow the vendor guide, corrected for the pinned vLLM (images/matrix.toml) as
docs/engines.md ("vLLM") records: nodes ranked 1 and up are ``--headless`` with
``--data-parallel-start-rank``; node 0 passes no start rank (vllm/engine/arg_utils.py,
"autoswitch to data_parallel_external_lb"); MTP is ``--speculative-config`` with the
method ``mtp``, as ``longcat_flash_mtp`` is deprecated and rewritten.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..plan import Plan

PROGRAM = "vllm"
# The current spelling. The pinned vLLM still accepts "longcat_flash_mtp" but logs "method
# `%s` is deprecated and replaced with mtp" (vllm/config/speculative.py,
# SpeculativeConfig.__post_init__).
SPECULATIVE_CONFIG = {"method": "mtp", "num_speculative_tokens": 1}
# vLLM waits VLLM_ENGINE_READY_TIMEOUT_S (vllm/envs.py, default 600 s) for its engine
# cores to load, which is short for a 560B checkpoint (docs/engines.md, "vLLM").
ENGINE_ENV = {"VLLM_ENGINE_READY_TIMEOUT_S": "3600"}


def build_argv(plan: Plan) -> list[str]:
    """Return the vLLM command for ``plan``."""
    argv = [PROGRAM, "serve", plan.model,
            "--trust-remote-code",
            "--enable-expert-parallel",
            "--tensor-parallel-size", str(plan.tensor_parallel_size)]
    if not plan.headless:
        argv += ["--host", plan.host, "--port", str(plan.port)]
    if plan.served_model_name:
        argv += ["--served-model-name", plan.served_model_name]
    if plan.revision:  # DOWNLOAD=0: vLLM fetches the checkpoint at this revision
        argv += ["--revision", plan.revision]
    if plan.multi_node:
        argv += [
            "--data-parallel-size", str(plan.data_parallel_size),
            "--data-parallel-size-local", "1",
            "--data-parallel-address", plan.master_host,
            "--data-parallel-rpc-port", str(plan.master_port),
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


def find_engine() -> str | None:
    """Return the path of the ``vllm`` command on ``PATH``, or ``None``.

    The same search ``os.execvp`` makes. Not ``shutil.which``: importing shutil (with
    bz2, lzma and fnmatch) costs more than the rest of the launcher's start-up.
    """
    import os

    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
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
    ``AsyncEngineArgs.from_cli_args``. A ``--speculative-config`` method that vLLM
    would rewrite with a deprecation warning (any MTP method but ``mtp``, from
    ``vllm.config.speculative.MTPModelTypes``) is reported too. Imports vLLM: never on
    the launch path.

    Returns:
        One line per rejected flag or value; empty when vLLM accepts ``argv``.
    """
    import contextlib
    import io
    import os

    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm import AsyncEngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from . import unknown_flags

    args = argv[argv.index("serve"):]
    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(dest="subparser")
    command = ServeSubcommand()
    serve = command.subparser_init(subparsers)
    known = set(serve._option_string_actions)  # argparse's table of option strings
    # vLLM normalises underscores to dashes (docs/engines.md, "vLLM"); compare dashed names.
    problems = unknown_flags([a.replace("_", "-") if a.startswith("--") else a
                              for a in args[2:]], known, f"vllm {installed_version()}")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            namespace = parser.parse_args(args)
            command.validate(namespace)
            AsyncEngineArgs.from_cli_args(namespace)
        problems += _deprecated_speculative_method(getattr(namespace, "speculative_config",
                                                           None))
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        problems.append("by the parser: " + (message[-1] if message else "refused"))
    except Exception as exc:  # vLLM's own validation errors (ValueError, TypeError, ...)
        problems.append(f"by vLLM's validation: {type(exc).__name__}: {exc}")
    return problems


def _deprecated_speculative_method(config: object) -> list[str]:
    """Describe a speculative method vLLM accepts only with a deprecation warning."""
    from typing import get_args

    from vllm.config.speculative import MTPModelTypes

    method = (config or {}).get("method") if isinstance(config, dict) else None
    if method in get_args(MTPModelTypes) and method != "mtp":
        return [f"--speculative-config: method {method!r} is deprecated in vllm "
                f"{installed_version()}; use 'mtp'"]
    return []
