"""Values: raw strings from the environment in, checked Python values out.

The leaf of the launcher: every module that reads a variable (``settings`` for the
launcher's own, ``platforms`` for LeaderWorkerSet and Slurm) parses it with these
functions, so each kind of value is accepted one way everywhere. It imports nothing of
the launcher but ``errors`` and ``output`` (the shortest secret), and only the standard library (``ipaddress`` and ``re`` lazily,
when a value needs them).

"""

from __future__ import annotations

from .errors import ConfigError
from .output import MIN_SECRET_CHARS

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")
BOOL_ACCEPTED = "1/true/yes/on or 0/false/no/off/empty (any case)"

# The largest whole number any variable takes: 2**31 - 1 keeps counts, ranks and seconds
# within a C int, which is what the engines and the kernel take them as.
LARGEST_WHOLE = 2**31 - 1


ADDRESS_ACCEPTED = "an IPv4 address, an IPv6 address (brackets optional) or a DNS name"

# RFC 1123 host names: labels of 1-63 letters, digits and inner hyphens; 253 in all.
_HOSTNAME = (
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def fullmatch(pattern: str, text: str) -> bool:
    """``re.fullmatch(pattern, text)``, with ``re`` imported only when a value needs it."""
    import re

    return re.fullmatch(pattern, text) is not None


def parse_bool(name: str, raw: str) -> bool:
    """Parse a boolean the one way the launcher accepts (``BOOL_ACCEPTED``).

    Args:
        name: the variable the value came from, for the error message.
        raw: its value; surrounding whitespace is ignored, case too.

    Raises:
        ConfigError: for any other word.
    """
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(name, raw, BOOL_ACCEPTED)


def parse_whole(
    name: str, raw: str, low: int, high: int = LARGEST_WHOLE, accepted: str | None = None
) -> int:
    """Parse a whole number written in ASCII decimal digits, ``low <= n <= high``.

    The length is checked before the conversion, so a value of thousands of digits is
    refused like any other (``int()`` itself raises on more than 4300 digits).

    Args:
        name: the variable the value came from, for the error message.
        raw: its value; surrounding whitespace is ignored.
        low, high: the inclusive bounds.
        accepted: what the message says is accepted (default: ``"a whole number, LOW..HIGH"``).

    Raises:
        ConfigError: not all digits, or out of bounds; the message gives both bounds.
    """
    text = raw.strip()
    digits = text.lstrip("0") or "0"
    if (
        not text
        or not (text.isascii() and text.isdigit())
        or len(digits) > len(str(high))
        or not low <= int(digits) <= high
    ):
        raise ConfigError(name, raw, accepted or f"a whole number, {low}..{high}")
    return int(digits)


def _dotted_numeric(text: str) -> bool:
    """True for text made only of digits and dots, such as ``010.0.0.1`` or ``1.2.3``.

    Resolvers read such names as IPv4 addresses in the old inet_aton forms (octal, fewer
    than four parts), which point at another host than the one written.
    """
    return (
        bool(text) and all(c.isdigit() or c == "." for c in text) and any(c.isdigit() for c in text)
    )


def parse_address(name: str, raw: str, accepted: str = ADDRESS_ACCEPTED) -> str:
    """Return a host address without IPv6 brackets, in canonical form.

    Accepts IPv4 in its canonical dotted-quad form, IPv6 with or without brackets
    (``[fd00::1]``), or a DNS name (RFC 1123), which is returned without a trailing dot.

    Args:
        name: the variable the value came from, for the error message.
        raw: the value.
        accepted: what the error message says is accepted.

    Raises:
        ConfigError: for anything else, e.g. a value with a port (``10.0.0.1:5000``), or an
            all-numeric dotted value that is not a canonical IPv4 address (``010.0.0.1``,
            ``1.2.3``: resolvers read them as other hosts, 8.0.0.1 and 1.2.0.3).
    """
    import ipaddress

    text = raw.strip()
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        pass
    if _dotted_numeric(text.rstrip(".")):
        raise ConfigError(
            name,
            raw,
            accepted,
            "An all-numeric name is not a canonical IPv4 address (four numbers "
            "0..255 without leading zeros); resolvers would read it as another "
            "address.",
        )
    if inner is text and fullmatch(_HOSTNAME, text):
        return text.rstrip(".")
    detail = (
        "Give the address alone; the port has its own variable."
        if text.count(":") == 1 and text.rsplit(":", 1)[1].isdigit()
        else "A host name holds letters, digits, hyphens and dots only."
    )
    raise ConfigError(name, raw, accepted, detail)


def join_host_port(host: str, port: int) -> str:
    """``HOST:PORT``, with an IPv6 host in brackets (``[fd00::1]:5000``).

    The form SGLang's ``--dist-init-addr`` takes, and the one every log line uses.
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# A MODEL that names a local directory rather than a Hugging Face repo id (settings, kind
# "model"): absolute, or relative starting with ./ or ../.
LOCAL_MODEL_PREFIXES = ("/", "./", "../")
# huggingface_hub's cache layout: a repository's folder is models--{org}--{name}
# (huggingface_hub/constants.py, REPO_ID_SEPARATOR; file_download.py, repo_folder_name).
CACHE_FOLDER_PREFIX = "models--"


def is_local_model(model: str) -> bool:
    """True when ``MODEL`` names a local directory rather than a repo id."""
    return model.startswith(LOCAL_MODEL_PREFIXES)


def repo_id_of_cache_folder(path: str) -> str | None:
    """``org/name`` for a Hugging Face cache repository folder (``.../models--org--name``),
    else ``None``. Reads nothing from disk."""
    import os

    name = os.path.basename(os.path.normpath(path))
    if not name.startswith(CACHE_FOLDER_PREFIX):
        return None
    return name[len(CACHE_FOLDER_PREFIX) :].replace("--", "/")


# What check_secret accepts, in words; the README's variable table says the same.
SECRET_ACCEPTED = (
    f"{MIN_SECRET_CHARS} or more ASCII characters, without spaces, newlines or control "
    "characters, and not part of the launcher's own text"
)


def check_secret(name: str, raw: str) -> None:
    """Refuse a secret that is short, holds whitespace or control characters, or is not
    ASCII, unshown.

    A token read from a file often keeps its trailing newline; HTTP clients then refuse the
    header (``Illegal header value``) and print it whole. A secret travels in an HTTP
    header (``Authorization: Bearer ...``), whose value the Hub's client encodes as ASCII
    (httpx2/_models.py, ``_normalize_header_value``; RFC 9110, section 5.5, admits no more
    than obsolete Latin-1): a non-ASCII one fails there as a ``UnicodeEncodeError`` that
    quotes a character of it and its position.

    Raises:
        ConfigError: naming ``name``, never the value.
    """
    accepted = SECRET_ACCEPTED
    if raw and raw.strip() != raw:
        _forget(raw)
        raise ConfigError(
            name,
            raw,
            accepted,
            "Remove the trailing newline or spaces (a Secret made from a file "
            "keeps them: create it with --from-literal, or strip the file).",
            hide_value=True,
        )
    if not raw.isprintable() or " " in raw:
        _forget(raw)
        raise ConfigError(
            name,
            raw,
            accepted,
            "It holds a space, a line break or a control character inside: a token is one "
            "word (copy it again, or strip the file to that word).",
            hide_value=True,
        )
    if not raw.isascii():
        _forget(raw)
        raise ConfigError(
            name,
            raw,
            accepted,
            "It holds a character outside ASCII, which an HTTP header (Authorization: "
            "Bearer ...) cannot carry: copy the token again, as plain text.",
            hide_value=True,
        )
    if raw and len(raw) < MIN_SECRET_CHARS:
        _forget(raw)
        raise ConfigError(name, raw, accepted, hide_value=True)
    check_not_launcher_text(name, raw)


def check_not_launcher_text(name: str, secret: str) -> None:
    """Refuse a secret that is, in any case, part of the launcher's own text: a word of its
    plan or its messages (``environment``, ``Prometheus``, ``GPUS_PER_NODE``).

    Output blanks every secret wherever it appears, in any case
    (``entrypoint.output.configure``), so such a secret would be blanked inside the
    launcher's fixed text too (``ENGINE vllm ***``), and anyone who reads the output could
    tell it. Every text the launcher prints comes from its own source files, so the secret
    is looked for in them (``_launcher_text``: about 350 KB, read once, only when a secret
    is set). Values shorter than ``MIN_SECRET_CHARS`` are refused elsewhere, and ignored.

    Raises:
        ConfigError: naming ``name``, never the value.
    """
    value = secret.strip()
    if len(value) < MIN_SECRET_CHARS or value.lower() not in _launcher_text():
        return
    _forget(secret)
    raise ConfigError(
        name,
        secret,
        SECRET_ACCEPTED,
        "It is a word of the launcher's plan or messages, where the *** that blanks it "
        "would show it: choose a key that is not an ordinary word (openssl rand -hex 32).",
        hide_value=True,
    )


def _forget(secret: str) -> None:
    """Stop blanking a refused secret that is part of the launcher's own text
    (``entrypoint.output.blank_no_more``): the refusal's fixed words may hold it. Any other
    refused secret stays blanked."""
    value = secret.strip()
    if len(value) >= MIN_SECRET_CHARS and value.lower() in _launcher_text():
        from .output import blank_no_more

        blank_no_more(secret)


_launcher_text_read: list[str] = []


def _launcher_text() -> str:
    """The launcher's source files (``entrypoint/**/*.py``), lower-cased and joined: every
    text it prints is written there or made from the environment."""
    if not _launcher_text_read:
        import os

        package = os.path.dirname(os.path.abspath(__file__))
        parts = []
        for folder, subfolders, files in os.walk(package):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for file in sorted(files):
                if file.endswith(".py"):
                    with open(os.path.join(folder, file), encoding="utf-8") as f:
                        parts.append(f.read().lower())
        _launcher_text_read.append("\n".join(parts))
    return _launcher_text_read[0]
