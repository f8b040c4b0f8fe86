"""build.py's errors: each carries the exit status it ends the command with.

``images.cli.main`` turns any of them into one message on stderr and that status, never a
traceback. The statuses are documented in the README ("Images"):

====== ===========================================================================
status meaning
====== ===========================================================================
0      done
1      a build, verification, pull or push failed (``BuildError``)
2      bad arguments, a bad matrix or a malformed ``DOCKER_HOST`` (``UsageError``)
74     the output could not be written (a full disk, a closed pipe, a closed stdout
       or stderr: ``entrypoint.errors.output_failed``)
130    interrupted
====== ===========================================================================
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class BuildError(Exception):
    """A failure that build.py reports as one message and an exit status, no traceback.

    Attributes:
        exit_status (int): 1 for a failed build, verification, pull or push; 2 for bad
            input.
    """

    def __init__(self, message: str, exit_status: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_status = exit_status


class UsageError(BuildError):
    """Bad arguments or a bad matrix: exit status 2."""

    def __init__(self, message: str):
        super().__init__(message, exit_status=EXIT_USAGE)


def shown(value: object) -> str:
    """``repr(value)`` for a message, unless it holds an ``@``: user info (``user:password@``)
    whose password holds a ``/`` is no longer a URL that redaction recognises, so such a
    value is described, never quoted."""
    text = repr(value)
    if "@" in text:  # a list or a dict of such strings too
        return f"a value of {len(text)} characters holding '@' (not shown: it may hold a password)"
    return text
