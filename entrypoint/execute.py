"""The final step: print the command, then replace this process with the engine.

``os.execvpe`` keeps the process ID, so under the images' init (dumb-init) the engine
receives SIGTERM directly and no wrapper process remains. Nothing goes through a shell.
"""

from __future__ import annotations

import os
import sys

from .errors import EngineNotInstalled
from .output import PREFIX, command_line, log, say

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Iterable, Mapping
    from typing import NoReturn


def engine_environment(
    environ: Mapping[str, str], engine_env: Mapping[str, str], read_by_libraries: Iterable[str] = ()
) -> dict[str, str]:
    """Return the engine's environment: ``environ`` plus ``engine_env`` where unset.

    One rule for blank values, as for the launcher's own variables: for every name in
    ``engine_env`` or ``read_by_libraries`` (the variables the README documents for
    huggingface_hub, Gloo and NCCL), an empty or all-blank value counts as unset, so it is
    dropped, or replaced by the launcher's choice in ``engine_env``; other values reach the
    engine without surrounding whitespace (`` lo `` reaches Gloo as ``lo``, the interface
    preflight checked).

    Args:
        environ: the launcher's environment.
        engine_env: variables the launcher chose (``entrypoint.engines.engine_env``).
        read_by_libraries: more names whose values are normalised the same way.
    """
    env = dict(environ)
    for name in {*engine_env, *read_by_libraries}:
        value = env.pop(name, "").strip()
        if value:
            env[name] = value
        elif name in engine_env:
            env[name] = engine_env[name]
    return env


def set_soft_limits(rlimits: Mapping[str, int]) -> None:
    """Set this process's soft resource limits (kept across the exec), hard limits unchanged.

    Args:
        rlimits: soft limit per ``resource`` name, e.g. ``{"RLIMIT_MEMLOCK": -1}``
            (``resource.RLIM_INFINITY``); each at most the hard limit.

    Raises:
        OSError, ValueError: as ``resource.setrlimit`` raises them (a value above the hard
            limit).
    """
    if not rlimits:
        return
    import resource

    for name, soft in rlimits.items():
        which = getattr(resource, name)
        resource.setrlimit(which, (soft, resource.getrlimit(which)[1]))


def exec_engine(
    argv: list[str],
    env: Mapping[str, str],
    engine: str,
    pid_record: str | None = None,
    rlimits: Mapping[str, int] | None = None,
) -> NoReturn:
    """Print the command on stdout and become ``engine`` by running ``argv``. Does not return.

    Args:
        argv: the engine command.
        env: the engine's environment.
        engine: ``"sglang"`` or ``"vllm"``, for the error.
        pid_record: a file to write this process's ID to first (``entrypoint.health``
            reads it on headless nodes); the exec keeps the ID. Not written when ``None``
            or when it cannot be written (the launch goes on).
        rlimits: soft resource limits to set first (``set_soft_limits``), e.g. the memlock
            limit raised to the hard one (``entrypoint.fabric.check_memlock``).

    Raises:
        EngineNotInstalled: when ``argv[0]`` cannot be executed.
    """
    if pid_record is not None:
        from .health import record_engine_pid

        try:
            record_engine_pid(pid_record)
        except OSError:
            pass  # health then reports a headless node unhealthy, with the path
    try:
        set_soft_limits(rlimits or {})
    except (OSError, ValueError) as exc:  # the hard limit moved since preflight read it
        log(f"warning: could not set the engine's resource limits {dict(rlimits or {})}: {exc}")
    say(f"{PREFIX}: exec {command_line(argv)}")
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise EngineNotInstalled(engine, f"{argv[0]!r}: {exc.strerror}") from None
