"""``python -m entrypoint``: the images' ENTRYPOINT. It only dispatches.

Usage::

    python -m entrypoint [--dry-run] [ENGINE FLAGS ...] [-- ENGINE ARGS ...]
    python -m entrypoint check [--all]
    python -m entrypoint health
    python -m entrypoint prefetch [--verify]
    python -m entrypoint env-table

Without a subcommand it launches (``entrypoint.launch.launch``): arguments that start
with ``-`` go to the engine after ``EXTRA_ARGS``. Each subcommand takes exactly its own
options; anything else, a misspelled subcommand or a ``--dry-run`` spelled another way
included, prints the usage and exits 2 without starting anything. Every ``LaunchError``
becomes one message on stderr and its documented exit status (``entrypoint.errors``).
"""

from __future__ import annotations

import sys

from .errors import EXIT_CONFIG, ConfigError, LaunchError, output_failed

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping, Sequence

USAGE = """\
usage: python -m entrypoint [--dry-run] [ENGINE FLAGS ...] [-- ENGINE ARGS ...]
       python -m entrypoint check [--all]
       python -m entrypoint health
       python -m entrypoint prefetch [--verify]
       python -m entrypoint env-table

Launch LongCat-Flash on SGLang or vLLM, configured by environment variables
(ENGINE, PRECISION, NNODES, NODE_RANK, MASTER_IP, MTP, ...; see env-table).

  --dry-run    print the plan and the command, start nothing (or DRY_RUN=1);
               anywhere before "--"
  --           pass everything after it to the engine as is (e.g. -- --help)
  check        run the command through the installed engine's own parser;
               --all: every standard plan (fp8/bf16 x node ranks x MTP off/on
               x VARIANT chat/thinking x TOOL_CALLS on/off where available)
  health       exit 0 when this node is healthy (the images' HEALTHCHECK)
  prefetch     fetch the checkpoint this configuration serves into HF_HOME, then
               exit (no GPU, no engine); --verify: then check every file
               against the Hub's sizes and hashes
  env-table    print the environment variables as a Markdown table

Exit statuses: 0 ok, 1 check/health failed, 2 bad configuration or usage,
3 preflight failed, 4 weights unavailable (or, prefetch --verify, differing),
74 output could not be written, 127 engine not installed (or, check, not
importable), 130/143 SIGINT/SIGTERM during a download.
"""

DRY_RUN = "--dry-run"
# Subcommand -> the exact argument lists it accepts after its name.
SUBCOMMANDS = {
    "check": ([], ["--all"]),
    "health": ([],),
    "prefetch": ([], ["--verify"]),
    "env-table": ([],),
}


class UsageError(LaunchError):
    """The command line is not one of the forms in ``USAGE``. Exit status 2."""

    exit_status = EXIT_CONFIG

    def message(self) -> str:
        usage = USAGE.split("\n\n", 1)[0]
        return f"{self}\n{usage}\n(python -m entrypoint --help explains each)"


def _looks_like_dry_run(token: str) -> bool:
    """True for other spellings of ``--dry-run``: ``--dry_run``, ``--dry-run=1``, ``--dryrun``,
    ``-dry-run``, ``--DRY-RUN``. Neither engine has an option starting with ``--dry``."""
    name = token.split("=", 1)[0].lower().replace("_", "-").lstrip("-")
    return name.startswith("dry") and token != DRY_RUN


def parse_command_line(args: Sequence[str]) -> tuple[str, list[str], bool]:
    """Split the arguments into (subcommand, its arguments or the engine's, dry run).

    Returns:
        ``("launch", engine arguments, dry_run)`` without a subcommand;
        ``(name, [], False)``, ``("check", ["--all"], False)`` or
        ``("prefetch", ["--verify"], False)`` for a subcommand;
        ``("help", [], False)`` for ``-h``/``--help``.

    Raises:
        UsageError: a subcommand with arguments it does not take, a first argument that
            is neither a subcommand nor a flag (a misspelled subcommand), or a
            ``--dry-run`` spelled another way.
    """
    args = list(args)
    if args[:1] in (["-h"], ["--help"]) and len(args) == 1:
        return "help", [], False
    if args and args[0] in SUBCOMMANDS:
        name, rest = args[0], args[1:]
        if rest not in SUBCOMMANDS[name]:
            forms = " or ".join(" ".join(form) or "no arguments" for form in SUBCOMMANDS[name])
            raise UsageError(f"'{name}' takes {forms}, not {' '.join(rest)!r}")
        return name, rest, False
    cut = args.index("--") if "--" in args else len(args)
    before, after = args[:cut], args[cut + 1 :]
    if before and not before[0].startswith("-"):
        raise UsageError(
            f"unknown command {before[0]!r}; the commands are "
            f"{', '.join(SUBCOMMANDS)}, and engine flags start with '-'"
        )
    for token in before:
        if _looks_like_dry_run(token):
            raise UsageError(
                f"{token!r} is not an option; a dry run is exactly {DRY_RUN} (or DRY_RUN=1)"
            )
    dry_run = DRY_RUN in before
    return "launch", [a for a in before if a != DRY_RUN] + after, dry_run


def refuse_secret_in_revision(revision: str, secrets: Mapping[str, str]) -> None:
    """Refuse a ``MODEL_REVISION`` that holds a secret's value (any case): the revision
    goes into the Hub's URLs (``/api/models/REPO/revision/REV``, in every proxy's and
    mirror's log) and names a file in the cache (``refs/REV``), whether or not the engine's
    command line gets it.

    Raises:
        ConfigError: naming ``MODEL_REVISION`` and the secret, neither value shown.
    """
    from .output import MIN_SECRET_CHARS

    for name, secret in secrets.items():
        value = secret.strip()
        if len(value) >= MIN_SECRET_CHARS and value.lower() in revision.lower():
            raise ConfigError(
                "MODEL_REVISION",
                revision,
                f"a branch, tag or commit, not the value of {name}",
                "A revision goes into the Hub's URLs and the cache's file names.",
                hide_value=True,
            )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the launcher; return the exit status (``exec`` does not return at all).

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` by default.
        env: the environment; ``os.environ`` by default.

    A stdout or stderr closed at start (``>&-``: Python sets ``sys.stdout`` or
    ``sys.stderr`` to None) ends it at once with ``EXIT_OUTPUT`` (74), every command
    alike: the plan, a health verdict or an error would go nowhere, and an engine started
    then would inherit the closed descriptor.
    """
    if sys.stdout is None or sys.stderr is None:
        return output_failed()
    import os

    from .output import configure, log, say
    from .settings import named_secrets

    env = os.environ if env is None else env
    secrets = named_secrets(env)
    configure(secrets.values())
    try:
        command, args, dry_run = parse_command_line(sys.argv[1:] if argv is None else argv)
        if command == "help":
            say(USAGE, end="")
            return 0
        if command != "env-table":  # the commands that print what the environment holds
            from .values import check_not_launcher_text

            for name, value in secrets.items():
                check_not_launcher_text(name, value)
            refuse_secret_in_revision(env.get("MODEL_REVISION") or "", secrets)
        if command == "check":
            from .check import run_check

            return run_check(env, args == ["--all"], sys.stdout)
        if command == "health":
            from .health import run_health

            return run_health(env)
        if command == "prefetch":
            from .prefetch import run_prefetch

            return run_prefetch(env, args == ["--verify"])
        if command == "env-table":
            from .settings import env_table_markdown

            # Static text from VARIABLES, no value of the environment: written as it is
            # (redaction would blank its "Authorization: Bearer KEY" placeholder).
            sys.stdout.write(env_table_markdown())
            sys.stdout.flush()
            return 0
        from .launch import launch
        from .values import parse_bool

        return launch(env, args, dry_run or parse_bool("DRY_RUN", env.get("DRY_RUN", "")))
    except LaunchError as error:
        try:
            log(f"error: {error.message()}")
        except OSError:
            return output_failed()
        return error.exit_status
    except KeyboardInterrupt:
        return 130
    except OSError:  # every other OSError is a LaunchError by now: writing output failed
        return output_failed()
