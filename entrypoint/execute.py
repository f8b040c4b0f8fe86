"""The final step: print the command, then replace this process with the engine.

``os.execvpe`` keeps the process ID, so under the images' init (dumb-init) the engine
receives SIGTERM directly and no wrapper process remains. Nothing goes through a shell.
"""

from __future__ import annotations

import os
import sys

from .errors import EngineNotInstalled
from .output import PREFIX, command_line, say

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping
    from typing import NoReturn


def engine_environment(environ: Mapping[str, str], engine_env: Mapping[str, str]) -> dict[str, str]:
    """Return the engine's environment: ``environ`` plus ``engine_env`` where unset."""
    env = dict(environ)
    for name, value in engine_env.items():
        env.setdefault(name, value)
    return env


def exec_engine(argv: list[str], env: Mapping[str, str], engine: str) -> NoReturn:
    """Print the command on stdout and become ``engine`` by running ``argv``. Does not return.

    Raises:
        EngineNotInstalled: when ``argv[0]`` cannot be executed.
    """
    say(f"{PREFIX}: exec {command_line(argv)}")
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise EngineNotInstalled(engine, f"{argv[0]!r}: {exc.strerror}") from None
