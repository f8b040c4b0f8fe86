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

from .units import GB, GiB, MiB

PREFIX = "longcat-deploy"

# The shortest secret (token, API key) accepted (entrypoint.settings refuses shorter ones).
# Output blanks each secret wherever its text appears, so a key as short as "on" would
# blank parts of every message; real tokens are far longer (Hugging Face user tokens:
# "hf_" and 34 characters).
MIN_SECRET_CHARS = 8

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

# Each configured secret's spellings (raw, escaped, quoted), longest first, and one
# pattern per secret for its percent-encoded and escaped forms (``_encoded_pattern``).
_secrets: tuple[str, ...] = ()
_encoded_secrets: tuple[str, ...] = ()
# The values configure was given, for blank_also.
_configured: tuple[str, ...] = ()
# Patterns compiled on first use (``re`` is not imported at start for text without them).
_patterns: dict[tuple[str, str], re.Pattern[str]] = {}


def configure(secrets: Iterable[str]) -> None:
    """Blank ``secrets`` (their values) in everything printed from now on.

    The launcher calls this once, first thing, with the values of the secret variables
    (``entrypoint.settings.SECRET_VARIABLES``). Each secret is blanked in every form it
    can take in text: as given, without surrounding whitespace, escaped as Python and JSON
    escape it, shell-quoted, in any mix of upper and lower case (a server or proxy may
    change the case of what it echoes), and with any of its characters percent-encoded,
    with upper- or lower-case hex digits (RFC 3986, section 2.1: a client or server may
    encode any character, and echo either case). Values shorter than ``MIN_SECRET_CHARS``
    are ignored: settings refuses them before anything else is printed, and blanking
    them would garble every message.
    """
    global _secrets, _encoded_secrets, _configured
    secrets = _configured = tuple(secrets)
    values = {
        value
        for secret in secrets
        for value in (secret, secret.strip())
        if len(value) >= MIN_SECRET_CHARS
    }
    # Longest first, so a form containing another is blanked whole.
    _secrets = tuple(
        sorted({form for v in values for form in _spellings(v)}, key=len, reverse=True)
    )
    _encoded_secrets = tuple(sorted(values, key=len, reverse=True))
    _patterns.clear()


def blank_also(secrets: Iterable[str]) -> None:
    """Blank ``secrets`` too, from now on, beside those ``configure`` was given: secrets
    learned during the launch (the tokens huggingface_hub's stored-tokens file holds, a
    token it refreshed)."""
    configure([*_configured, *secrets])


def blank_no_more(secret: str) -> None:
    """Stop blanking ``secret``: a secret refused before any use, whose refusal is printed
    next. The refusal's fixed words may hold it (an ``API_KEY`` of ``characters``), and
    blanking them would tell it; unblanked, they tell nothing."""
    configure([s for s in _configured if s.strip() != secret.strip()])


def _spellings(secret: str) -> set[str]:
    """The forms ``secret`` takes in text but percent-encoding: raw, escaped and quoted."""
    forms = {secret, quote(secret)}
    if not (secret.isascii() and secret.isprintable()) or any(c in secret for c in "'\\\""):
        import json

        forms.add(repr(secret)[1:-1])
        forms.add(json.dumps(secret)[1:-1])
        forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        # Inside a larger quoted word the quotes are escaped on their own: repr() of a
        # text holding both kinds escapes "'" as \', and a shell-quoted word writes "'"
        # as '"'"' (shlex.quote).
        escaped = secret.replace("\\", "\\\\")
        forms.add(escaped.replace("'", "\\'"))
        forms.add(escaped.replace('"', '\\"'))
        forms.add(secret.replace("'", "'\"'\"'"))
    return {form for form in forms if form}


def _pattern(kind: str, secret: str) -> re.Pattern[str]:
    """The pattern for ``secret`` compiled on first use: ``kind`` ``"case"``, its text in
    any case; ``"encoded"``, ``_encoded_pattern``."""
    pattern = _patterns.get((kind, secret))
    if pattern is None:
        import re

        source = _encoded_pattern(secret) if kind == "encoded" else re.escape(secret)
        pattern = _patterns[kind, secret] = re.compile("(?i)" + source)
    return pattern


def _encoded_pattern(secret: str) -> str:
    """A pattern for ``secret`` with any of its characters encoded, in any case: percent-
    encoded (each as the escapes of its UTF-8 bytes, RFC 3986 section 2.1; an undecodable
    byte of the environment, os.environ's lone surrogate, as that byte), or as a JSON or
    Python string escapes it (``\\u0068``, RFC 8259 section 7; ``\\x68``), with its
    backslash doubled too (the escape itself escaped, as ``repr`` shows it):
    ``hf%5FAbc``, ``%68%66_abc``, ``\\u0068f_abc``."""
    import re

    def one(char: str) -> str:
        code = ord(char)
        # The encoded forms first: a "%" of the secret itself must match "%25" whole.
        forms = ["".join(f"%{b:02x}" for b in char.encode("utf-8", "surrogateescape"))]
        if code < 0x10000:
            forms.append(rf"\\{{1,2}}u{code:04x}")
        if code < 0x100:
            forms.append(rf"\\{{1,2}}x{code:02x}")
        forms.append(re.escape(char))
        return f"(?:{'|'.join(forms)})"

    return "".join(one(char) for char in secret)


# The password of a URL (RFC 3986, section 3.2.1, userinfo). With a scheme, the userinfo
# runs to the LAST "@" before the first "/" or whitespace, as urllib.parse.urlsplit reads
# it (Lib/urllib/parse.py, _NetlocResultMixinStr._userinfo: netloc.rpartition("@")), so a
# password holding an unencoded "@", "#" or "?" is blanked whole. Without a scheme
# (``user:password@host``, which HTTP clients still send to ``host``), a password is
# recognised only before "@" and a host name or address with an optional port that ends
# there (whatever follows: a space, "/", "&", "}"...; after a port, a ":" too, as in
# ``u:PW@127.0.0.1:1: refused`` or the docker SDK's ``u:PW@host:2375:x``), so an image
# reference such as ``name:tag@sha256:...`` keeps its tag. Each branch may start only
# where its first part cannot reach further left (a lookbehind), so a long word is tried
# from its start alone, not from each of its characters (which took a 32 KiB word 10 s);
# without a scheme, a word can start after each ":", so the user name and the password are
# bounded there (256 characters each: a 60 KiB "a:a:..." word took 41 s).
_USERINFO = (
    r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://)([^\s/]*)@"
    r"|(?<![^\s/:'\"])([^\s/:'\"]{1,256}):[^\s/]{0,256}@"
    r"(?=\[|[\w.~%-]+(?::\d+(?![\w.~%@-])|:?(?![\w.~%@:-])))"
)
# Query (or fragment) parameters that carry a credential, by how their name ends (any
# case): OAuth 2.0 ``access_token`` (RFC 6750, section 2.3; in a fragment, RFC 6749,
# section 4.2.2) and ``client_secret`` (RFC 6749, section 2.3.1); AWS Signature Version 4
# query authentication ``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``
# (Amazon S3 API Reference, "Authenticating Requests: Using Query Parameters"), as in the
# Hub's CDN redirects; Google Cloud Storage signed URLs ``X-Goog-Signature`` and
# ``X-Goog-Credential``; Azure Storage SAS ``sig``; Google APIs' ``key``; and the generic
# ``token``, ``api_key``/``apikey``, ``secret``, ``password``/``passwd``/``pwd``, ``auth``.
_QUERY_CREDENTIAL = (
    r"(?i)([?&#][\w.~%-]*?(?:token|key|secret|password|passwd|pwd|sig|signature|credential|"
    r"auth))=[^&#\s'\")]*"
)


# The credential of an HTTP Authorization or Proxy-Authorization header (RFC 9110, section
# 11.6.2 and 11.7.2: a scheme, then the credentials), as a server may echo the request's
# headers back in an error: "Basic" carries base64 of user:password, "Bearer" a token. The
# schemes are those of IANA's HTTP Authentication Scheme Registry, and "token"; the value
# may follow quotes, a bracket (a list of values) or HTML-escaped quotes.
_AUTHORIZATION = (
    r"(?i)((?:proxy-)?authorization(?:[\"']|&quot;|&#0*39;)?\s*[:=]\s*"
    r"(?:[\"'\[(]|&quot;|&#0*39;)*\s*"
    r"(?:(?:basic|bearer|digest|dpop|hoba|mutual|negotiate|ntlm|privatetoken|scram-sha-1|"
    r"scram-sha-256|vapid|aws4-hmac-sha256|token)\s+)?)[^\s\"',;}\])&]+"
)


def redact(text: str) -> str:
    """Return ``text`` with every configured secret and every URL credential blanked (``***``).

    Configured secrets in each spelling ``configure`` lists. URL passwords (``_USERINFO``),
    with or without a scheme; the user name stays: ``https://user:PASSWORD@host`` reads
    ``https://user:***@host``, ``user:PASSWORD@host`` reads ``user:***@host``, and
    ``https://TOKEN@host`` reads ``https://***@host``. Query parameters that carry a
    credential (``_QUERY_CREDENTIAL``): ``?token=VALUE`` reads ``?token=***``. The
    credentials of an ``Authorization`` or ``Proxy-Authorization`` header
    (``_AUTHORIZATION``): ``Authorization: Basic VALUE`` reads ``Authorization: Basic ***``.

    ``re`` is imported only for text that may hold a URL credential (an ``@``, or an ``=``
    after ``?``, ``&`` or ``#``), or a percent-encoded secret.
    """
    if _secrets:
        text = _blank_secrets(text)
    if "@" in text:
        import re

        text = re.sub(_USERINFO, _blank_userinfo, text)
    if "=" in text and ("?" in text or "&" in text or "#" in text):
        import re

        text = re.sub(_QUERY_CREDENTIAL, rf"\1={REDACTED}", text)
    if "uthorization" in text.lower():
        import re

        text = re.sub(_AUTHORIZATION, rf"\1{REDACTED}", text)
    return text


def _blank_secrets(text: str) -> str:
    """``text`` with each stretch that any configured secret's spelling covers blanked
    once. The stretches are found in the text as given, then overlapping (or touching)
    ones are merged: two secrets that overlap in the text (the end of one is the start of
    another) are blanked whole, where blanking one first would break the other's match.
    Case is ignored (``str.lower`` on ASCII text, where it keeps every index; ``re``'s
    IGNORECASE otherwise)."""
    spans: list[tuple[int, int]] = []
    if text.isascii():
        lowered = text.lower()
        for form in _secrets:
            needle = form.lower()
            start = lowered.find(needle)
            while start != -1:
                spans.append((start, start + len(needle)))
                start = lowered.find(needle, start + 1)
    else:
        for form in _secrets:
            pattern = _pattern("case", form)
            spans.extend(match.span() for match in pattern.finditer(text))
    if "%" in text or "\\" in text:
        for secret in _encoded_secrets:
            pattern = _pattern("encoded", secret)
            spans.extend(match.span() for match in pattern.finditer(text))
    if not spans:
        return text
    spans.sort()
    pieces, end = [], 0
    merged_start, merged_end = spans[0]
    for start, stop in spans[1:]:
        if start <= merged_end:
            merged_end = max(merged_end, stop)
            continue
        pieces += [text[end:merged_start], REDACTED]
        end = merged_end
        merged_start, merged_end = start, stop
    pieces += [text[end:merged_start], REDACTED, text[merged_end:]]
    return "".join(pieces)


def _blank_userinfo(match: re.Match[str]) -> str:
    """``scheme://user:***@`` for a user and a password, ``scheme://***@`` for one token,
    ``user:***@`` without a scheme."""
    scheme, userinfo, user = match.group(1, 2, 3)
    if scheme is None:
        return f"{user}:{REDACTED}@"
    name, colon, password = userinfo.partition(":")
    # With no password (``TOKEN@``, ``TOKEN:@``) the user name is the credential.
    return f"{scheme}{name}:{REDACTED}@" if colon and password else f"{scheme}{REDACTED}@"


def log(message: str) -> None:
    """Print ``message`` on stderr with the launcher's prefix, redacted, flushed at once."""
    _write(redact(f"{PREFIX}: {message}"), sys.stderr, "\n")


def say(text: str, out: TextIO | None = None, end: str = "\n") -> None:
    """Print ``text`` on ``out`` (stdout by default), redacted, flushed at once."""
    _write(redact(text), out or sys.stdout, end)


def _write(text: str, out: TextIO, end: str) -> None:
    """Print ``text`` on ``out``; a character its encoding cannot carry (a strict
    ``PYTHONIOENCODING=ascii``, an undecodable byte of the environment kept as a lone
    surrogate by ``os.environ``) is written as a backslash escape instead of raising."""
    try:
        print(text, file=out, end=end, flush=True)
    except UnicodeEncodeError:
        encoding = getattr(out, "encoding", None) or "utf-8"
        safe = text.encode(encoding, "backslashreplace").decode(encoding, "replace")
        print(safe, file=out, end=end, flush=True)


def redact_logs(name: str) -> None:
    """Make every record of the logger ``name`` and of its descendants print redacted.

    Each handler such a record can reach now (those of ``name``, of its descendants and
    of its ancestors up to the root, and logging's last resort) gets a formatter that
    formats the record as the handler's own did (``%(message)s`` when it had none), with
    an exception shown as its last line (``TypeName: message``), no traceback, and passes
    the whole text through ``redact``. Calling it again changes nothing; a handler added
    afterwards is not covered (huggingface_hub adds its one handler at import).

    Args:
        name: a logger name (``"huggingface_hub"``).

    The launcher calls it with ``"huggingface_hub"`` when it imports that package: its
    ``StreamHandler`` on stderr (huggingface_hub/utils/logging.py,
    ``_configure_library_root_logger``) prints every request's URL and a ``curl`` line at
    ``HF_DEBUG=1`` (utils/_http.py, ``hf_request_event_hook``), and tracebacks
    (utils/_detect_agent.py, ``_fetch_registry``).
    """
    import logging

    class Redacting(logging.Formatter):
        redacts = True

        def __init__(self, inner: logging.Formatter | None) -> None:
            super().__init__()
            self.inner = inner or logging.Formatter()

        def format(self, record: logging.LogRecord) -> str:
            bare = logging.makeLogRecord(
                {**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None}
            )
            text = self.inner.format(bare)
            error = record.exc_info[1] if record.exc_info else None
            if error is not None:
                message = str(error)
                text += f"\n{type(error).__name__}" + (f": {message}" if message else "")
            return redact(text)

    loggers: list[logging.Logger] = [
        logger
        for key, logger in list(logging.Logger.manager.loggerDict.items())
        if key.startswith(name + ".") and isinstance(logger, logging.Logger)
    ]
    current: logging.Logger | None = logging.getLogger(name)
    while current is not None:
        loggers.append(current)
        current = current.parent if current.propagate else None
    handlers = [h for logger in loggers for h in logger.handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not getattr(handler.formatter, "redacts", False):
            handler.setFormatter(Redacting(handler.formatter))


def secret_flag(token: str) -> str | None:
    """The option of ``SECRET_FLAGS`` that ``token`` (``--name`` or ``--name=value``) names
    in a spelling an engine's parser accepts, else ``None``: dashes or underscores (vLLM
    normalises them), any case, or an abbreviation (argparse's prefix matching) of at least
    ``_MIN_ABBREVIATION`` characters, which names one secret flag alone."""
    if not token.startswith("--"):
        return None
    name = token.split("=", 1)[0].replace("_", "-").lower()
    if len(name) - 2 < _MIN_ABBREVIATION:
        return None
    return next((flag for flag in SECRET_FLAGS if flag.startswith(name)), None)


def is_secret_flag(token: str) -> bool:
    """True when ``token`` (``--name`` or ``--name=value``) names a secret-bearing option
    in a spelling an engine's parser accepts (``secret_flag``)."""
    return secret_flag(token) is not None


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
    # Each word is redacted before it is quoted: quoting a word that holds a secret among
    # other text (--lora-modules x=SECRET) can spell the secret in a way no form matches.
    return redact(" ".join(quote(redact(word)) for word in redact_argv(argv)))


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
