"""The final step: print the command, then replace this process with the engine.

``os.execvpe`` keeps the process ID, so under the images' init (dumb-init) the engine receives SIGTERM
directly and no wrapper process remains. Nothing goes through a shell.
"""

from __future__ import annotations

import os
import sys

from .errors import EngineNotInstalled

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from typing import Mapping

# Flags whose value is a secret, in both engines (SGLang server_args.py and vLLM
# entrypoints/openai/cli_args.py both define --api-key).
SECRET_FLAGS = ("--api-key",)


def redact(argv: list[str]) -> list[str]:
    """Return ``argv`` with the value of every flag in ``SECRET_FLAGS`` replaced by ``***``."""
    shown = list(argv)
    for i, token in enumerate(shown):
        for flag in SECRET_FLAGS:
            if token == flag and i + 1 < len(shown):
                shown[i + 1] = "***"
            elif token.startswith(flag + "="):
                shown[i] = flag + "=***"
    return shown


# The characters shlex.quote leaves unquoted (Lib/shlex.py, _find_unsafe).
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                  "_@%+=:,./-")


def quote(word: str) -> str:
    """Quote ``word`` for a POSIX shell exactly as ``shlex.quote`` does.

    Not ``shlex`` itself: it imports ``re``, which doubled the launcher's start-up cost
    (benchmarks/launcher_startup.py). tests/launcher/test_engines.py checks this against
    ``shlex.quote`` on arbitrary text.
    """
    if not word:
        return "''"
    if _SAFE.issuperset(word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def command_line(argv: list[str]) -> str:
    """The command as one shell-quoted line, secrets redacted, for printing."""
    return " ".join(quote(word) for word in redact(argv))


def engine_environment(environ: Mapping[str, str], engine_env: Mapping[str, str]) -> dict:
    """Return the engine's environment: ``environ`` plus ``engine_env`` where unset."""
    env = dict(environ)
    for name, value in engine_env.items():
        env.setdefault(name, value)
    return env


def exec_engine(argv: list[str], env: Mapping[str, str], engine: str):
    """Print the command on stdout and become ``engine`` by running ``argv``. Does not return.

    Raises:
        EngineNotInstalled: when ``argv[0]`` cannot be executed.
    """
    print(f"longcat-deploy: exec {command_line(argv)}", flush=True)
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise EngineNotInstalled(engine, f"{argv[0]!r}: {exc.strerror}") from None
