"""Output: everything the launcher prints goes through here.

- ``log``: one line (or block) on stderr, prefixed ``longcat-deploy:``.
- ``command_line``: an argv as one shell-quoted line, secrets redacted.
- ``format_bytes``: sizes for a human, in binary units (GiB, MiB) or in GB.

Standard library only, and only ``sys`` at import: the launcher runs on every container
start (``benchmarks/launcher_startup.py``).
"""

from __future__ import annotations

import sys

from .values import GB, GiB, MiB

PREFIX = "longcat-deploy"

# Flags whose value is a secret, in both engines (SGLang server_args.py and vLLM
# entrypoints/openai/cli_args.py both define --api-key).
SECRET_FLAGS = ("--api-key",)
REDACTED = "***"


def log(message: str) -> None:
    """Print ``message`` on stderr with the launcher's prefix, flushed at once."""
    print(f"{PREFIX}: {message}", file=sys.stderr, flush=True)


def redact_argv(argv: list[str]) -> list[str]:
    """Return ``argv`` with the value of every flag in ``SECRET_FLAGS`` replaced by ``***``."""
    shown = list(argv)
    for i, token in enumerate(shown):
        for flag in SECRET_FLAGS:
            if token == flag and i + 1 < len(shown):
                shown[i + 1] = REDACTED
            elif token.startswith(flag + "="):
                shown[i] = flag + "=" + REDACTED
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
    return " ".join(quote(word) for word in redact_argv(argv))


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that fits: ``64 MiB``, ``1.5 GiB``, ``8 KiB``."""
    for unit, size in (("TiB", 2**40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(n)} bytes"


def format_gb(n: int) -> str:
    """``n`` bytes in GB (10**9 bytes, the unit of checkpoint sizes) and exactly."""
    return f"{n / GB:.2f} GB ({n} bytes)"
