"""Output: everything the launcher prints goes through here, redacted.

- ``log`` (stderr, prefixed ``longcat-deploy:``) and ``say`` (stdout): every line the
  launcher prints, its messages and errors included, passes ``redact`` first.
- ``redact``: one function for all printed text. It blanks the value of every secret
  ``configure`` was given (``HF_TOKEN``, ``API_KEY``, ...) in each spelling it can take
  in text (raw, stripped, Python- or JSON-escaped, shell-quoted, percent-encoded), and the
  password or token of every URL (``https://user:PASSWORD@host``).
- ``command_line``: an argv as one shell-quoted line, with the values of secret-bearing
  flags blanked in every spelling an engine's parser accepts (``redact_argv``), then
  ``redact``.
- ``format_bytes``/``format_gb``: sizes for a human.

Standard library only, and only ``sys`` at import: the launcher runs on every container
start (``benchmarks/launcher_startup.py``).
"""

from __future__ import annotations

import sys

from .values import GB, MIN_SECRET_CHARS, GiB, MiB

PREFIX = "longcat-deploy"

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    import re
    from collections.abc import Iterable
    from typing import TextIO

# Options whose value is a secret, as the pinned engines define them: --api-key (SGLang
# srt/server_args.py; vLLM entrypoints/common/cli_args.py), --admin-api-key and
# --ssl-keyfile-password (SGLang srt/server_args.py), --hf-token (vLLM engine/arg_utils.py).
# tests/launcher/test_engine_contract.py derives the list from the real parsers and fails
# when an engine gains one that is missing here.
SECRET_FLAGS = ("--api-key", "--admin-api-key", "--hf-token", "--ssl-keyfile-password")
REDACTED = "***"
# An abbreviation argparse may accept for a secret flag keeps at least this many characters
# after the dashes (``--api`` and longer for ``--api-key``); shorter ones are not redacted.
_MIN_ABBREVIATION = 2

_secrets: tuple[str, ...] = ()


def configure(secrets: Iterable[str]) -> None:
    """Blank ``secrets`` (their values) in everything printed from now on.

    The launcher calls this once, first thing, with the values of the secret variables
    (``entrypoint.settings.SECRET_VARIABLES``). Each secret is blanked in every form it
    can take in text: as given, without surrounding whitespace, escaped as Python and JSON
    escape it, shell-quoted, and percent-encoded. Values shorter than ``MIN_SECRET_CHARS``
    are ignored: settings refuses them before anything else is printed, and blanking them
    would garble every message.
    """
    global _secrets
    forms: set[str] = set()
    for secret in secrets:
        for value in {secret, secret.strip()}:
            if len(value) >= MIN_SECRET_CHARS:
                forms.update(_spellings(value))
    # Longest first, so a form containing another is blanked whole.
    _secrets = tuple(sorted(forms, key=len, reverse=True))


def _spellings(secret: str) -> set[str]:
    """The forms ``secret`` takes in text: raw, escaped, quoted, percent-encoded."""
    forms = {secret, quote(secret)}
    if not (secret.isascii() and secret.isprintable()) or any(c in secret for c in "'\\\""):
        import json

        forms.add(repr(secret)[1:-1])
        forms.add(json.dumps(secret)[1:-1])
        forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    if not _SAFE.issuperset(secret):
        from urllib.parse import quote as percent

        forms.add(percent(secret, safe=""))
        forms.add(percent(secret))
    return {form for form in forms if form}


def redact(text: str) -> str:
    """Return ``text`` with every configured secret and every URL password blanked (``***``).

    URLs keep their user name: ``https://user:PASSWORD@host`` reads
    ``https://user:***@host``, and ``https://TOKEN@host`` reads ``https://***@host``.
    """
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "@" in text and "://" in text:
        import re

        text = re.sub(
            r"(?i)(\b[a-z][a-z0-9+.-]*://)([^/?#@\s]*?)(?::[^/?#@\s]*)?@", _blank_userinfo, text
        )
    return text


def _blank_userinfo(match: re.Match[str]) -> str:
    """``scheme://user:***@`` for a user and a password, ``scheme://***@`` for one token."""
    scheme, user = match.group(1), match.group(2)
    has_password = match.group(0)[len(scheme) + len(user) : -1].startswith(":")
    return f"{scheme}{user}:{REDACTED}@" if has_password else f"{scheme}{REDACTED}@"


def log(message: str) -> None:
    """Print ``message`` on stderr with the launcher's prefix, redacted, flushed at once."""
    print(redact(f"{PREFIX}: {message}"), file=sys.stderr, flush=True)


def say(text: str, out: TextIO | None = None, end: str = "\n") -> None:
    """Print ``text`` on ``out`` (stdout by default), redacted, flushed at once."""
    print(redact(text), file=out or sys.stdout, end=end, flush=True)


def is_secret_flag(token: str) -> bool:
    """True when ``token`` (``--name`` or ``--name=value``) names a secret-bearing option
    in a spelling an engine's parser accepts: dashes or underscores (vLLM normalises
    them), any case of the separator, or an abbreviation (argparse's prefix matching)."""
    if not token.startswith("--"):
        return False
    name = token.split("=", 1)[0].replace("_", "-").lower()
    return len(name) - 2 >= _MIN_ABBREVIATION and any(
        flag.startswith(name) for flag in SECRET_FLAGS
    )


def redact_argv(argv: list[str]) -> list[str]:
    """Return ``argv`` with the value of every secret-bearing flag replaced by ``***``.

    Covers ``--api-key V``, ``--api-key=V``, ``--api_key V`` and abbreviations such as
    ``--api-ke V`` (``is_secret_flag``).
    """
    shown = list(argv)
    for i, token in enumerate(shown):
        if not is_secret_flag(token):
            continue
        if "=" in token:
            shown[i] = token.split("=", 1)[0] + "=" + REDACTED
        elif i + 1 < len(shown):
            shown[i + 1] = REDACTED
    return shown


# The characters shlex.quote leaves unquoted (Lib/shlex.py, _find_unsafe).
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


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
    return redact(" ".join(quote(word) for word in redact_argv(argv)))


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
