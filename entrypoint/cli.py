"""``python -m entrypoint``: the images' ENTRYPOINT.

Usage::

    python -m entrypoint [--dry-run] [--] [ENGINE ARGS ...]
    python -m entrypoint check [--all]
    python -m entrypoint health
    python -m entrypoint env-table

Without a subcommand it reads the environment (see ``entrypoint.settings.VARIABLES``),
resolves this node's plan, builds the engine's argv and execs it. Arguments it does not
recognise are passed to the engine after ``EXTRA_ARGS``. Every ``LaunchError`` becomes
one message on stderr and its documented exit status (``entrypoint.errors``).
"""

from __future__ import annotations

import sys

from .errors import EngineNotInstalled, LaunchError
from .settings import VARIABLES, load_settings, parse_bool

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from typing import Mapping, Sequence

USAGE = """\
usage: python -m entrypoint [--dry-run] [ENGINE ARGS ...] [-- ENGINE ARGS ...]
       python -m entrypoint check [--all]
       python -m entrypoint health
       python -m entrypoint env-table

Launch LongCat-Flash on SGLang or vLLM, configured by environment variables
(ENGINE, PRECISION, NNODES, NODE_RANK, MASTER_IP, MTP, ...; see env-table).

  --dry-run    print the plan and the command, start nothing (or DRY_RUN=1);
               anywhere before "--"
  --           pass everything after it to the engine as is (e.g. -- --help)
  check        run the command through the installed engine's own parser;
               --all: every standard plan (fp8/bf16 x node ranks x MTP off/on)
  health       exit 0 when this node is healthy (the images' HEALTHCHECK)
  env-table    print the environment variables as a Markdown table

Exit statuses: 0 ok, 1 check/health failed, 2 bad configuration, 3 preflight failed,
4 weights unavailable, 127 engine not installed.
"""


def describe_plan(plan, argv: list[str], before_launch=()) -> str:
    """Render the plan for a human: each value and where it came from, then derived ones.

    ``before_launch``: (name, what, why) rows of what the launch would check and fetch
    first (``entrypoint.preflight.describe``); the dry run itself checks none of it.
    """
    from .launch import command_line

    shown = {
        "ENGINE": plan.engine, "PRECISION": plan.precision, "NNODES": plan.nnodes,
        "NODE_RANK": plan.node_rank, "MASTER_IP": plan.master_ip or "-",
        "MASTER_PORT": plan.master_port if plan.multi_node else "- (one node)",
        "MTP": "on" if plan.mtp else "off", "MODEL": plan.model,
        "GPUS_PER_NODE": plan.gpus_per_node, "HOST": plan.host,
        "PORT": plan.port if plan.serves_http else "- (headless node: no HTTP)",
        "EXTRA_ARGS": command_line(plan.extra_args) or "-",
    }
    lines = ["LongCat-Flash launch plan (dry run: nothing is started)"]
    for var in VARIABLES:
        if var.name in shown:
            lines.append(f"  {var.name:<22} {str(shown[var.name]):<44} "
                         f"{plan.sources.get(var.name, '')}")
    derived = [
        ("role", plan.role, ""),
        ("tensor parallel size", plan.tensor_parallel_size,
         plan.sources["tensor_parallel_size"]),
        ("expert parallel size", plan.expert_parallel_size,
         plan.sources["expert_parallel_size"]),
    ]
    if plan.engine == "vllm":
        derived.append(("data parallel size", plan.data_parallel_size,
                        plan.sources["data_parallel_size"]))
    if plan.mtp:
        derived.append(("draft model", plan.draft_model, "MODEL (the served checkpoint)"))
    if plan.served_model_name:
        derived.append(("served model name", plan.served_model_name, "MODEL"))
    from .engines import engine_env

    for name, value in sorted(engine_env(plan).items()):
        derived.append(("engine environment", f"{name}={value}", "unless already set"))
    for name, value, source in derived:
        lines.append(f"  {name:<22} {str(value):<44} {source}")
    if before_launch:
        lines.append("before launch (not done by a dry run):")
        for name, value, source in before_launch:
            lines.append(f"  {name:<22} {str(value):<44} {source}")
    lines.append("command:")
    lines.append(command_line(argv))
    return "\n".join(lines)


def launch(env: Mapping[str, str], passthrough: list[str], dry_run: bool) -> int:
    """Resolve the plan; print it (dry run) or check the host, fetch weights, exec the engine.

    Before the exec, in this order: the checkpoint is located without network access
    (``DOWNLOAD``, ``entrypoint.weights.locate``); the host checks run and report in one
    block (``PREFLIGHT``, ``entrypoint.preflight.run_checks``); missing checkpoint files
    are downloaded (``entrypoint.weights.prepare``); nodes ranked 1 and up wait for node 0
    (``MASTER_WAIT_S``). ``DOWNLOAD=0`` and ``PREFLIGHT=off`` skip their steps and their
    imports.

    Returns:
        0 after a dry run. Otherwise it does not return (exec) or raises.

    Raises:
        LaunchError: any refusal, carrying its exit status: ``PreflightError`` (3) for a
            failed host check or node 0 not answering with ``PREFLIGHT=on``,
            ``WeightsError`` (4) when the checkpoint cannot be made available locally.
    """
    from .engines import build_argv, engine_module
    from .plan import resolve_plan

    settings = load_settings(env)
    plan = resolve_plan(settings, passthrough)
    if dry_run:
        from .preflight import describe

        argv = build_argv(plan)
        print(describe_plan(plan, argv, describe(plan, settings.values, env)), flush=True)
        return 0
    module = engine_module(plan.engine)
    if module.find_engine() is None:
        raise EngineNotInstalled(plan.engine, {"sglang": "the sglang package in "
                                               f"{sys.executable}",
                                               "vllm": "the 'vllm' command on PATH"}[plan.engine])
    values, mode = settings.values, settings["PREFLIGHT"]
    located = None
    if values["DOWNLOAD"]:
        from .weights import locate

        located = locate(plan, values, env)
    if mode != "off":
        from .preflight import run_checks

        run_checks(plan, env, mode, download_to=located.cache
                   if located is not None and located.needs_download else None)
    if located is not None:
        from .weights import prepare

        prepare(plan, values, env, located)
    if mode != "off":
        from .preflight import wait_for_master

        wait_for_master(plan, values["MASTER_WAIT_S"], mode)
    argv = build_argv(plan)
    from .engines import engine_env
    from .launch import engine_environment, exec_engine

    exec_engine(argv, engine_environment(env, engine_env(plan)), plan.engine)
    return 0  # not reached: exec replaced this process


def health(env: Mapping[str, str]) -> int:
    """``health``: 0 when this node is healthy, 1 otherwise; prints the reason."""
    from .health import node_health
    from .plan import resolve_plan

    healthy, reason = node_health(resolve_plan(load_settings(env)))
    print(reason)
    return 0 if healthy else 1


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the launcher; return the exit status (``exec`` does not return at all).

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` by default.
        env: the environment; ``os.environ`` by default.
    """
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        if args[:1] == ["check"]:
            from .check import run_check

            if args[1:] not in ([], ["--all"]):
                print(USAGE, file=sys.stderr, end="")
                return 2
            return run_check(env, args[1:] == ["--all"], sys.stdout)
        if args == ["health"]:
            return health(env)
        if args == ["env-table"]:
            from .settings import env_table_markdown

            print(env_table_markdown(), end="")
            return 0
        if args[:1] in (["-h"], ["--help"]):
            print(USAGE, end="")
            return 0
        # --dry-run counts wherever it stands before "--": neither engine has such a
        # flag, and a preview asked for must never start a launch.
        cut = args.index("--") if "--" in args else len(args)
        dry_run = "--dry-run" in args[:cut]
        passthrough = [a for a in args[:cut] if a != "--dry-run"] + args[cut + 1:]
        dry_run = dry_run or parse_bool("DRY_RUN", env.get("DRY_RUN", ""))
        return launch(env, passthrough, dry_run)
    except LaunchError as error:
        print(f"longcat-deploy: error: {error.message()}", file=sys.stderr, flush=True)
        return error.exit_status
    except KeyboardInterrupt:
        return 130
