"""Weights: make the checkpoint the engine loads available on this host, before the exec.

``MODEL`` is a Hugging Face repo id or a local directory (``entrypoint.settings``).

- A local directory is used as given; it must hold ``config.json``. A Hugging Face cache
  repository folder (``.../hub/models--org--name``) is resolved to its snapshot: the one
  ``MODEL_REVISION`` names (a ref or a commit), else ``refs/main``, else the only one; clients
  then see ``org/name`` as the served model name.
- A repo id is looked up in the cache first, without any network access (``locate``). When
  every file the engine loads is there, that snapshot is used and the Hub is not contacted,
  so restarts neither wait for nor depend on the Hub, and a cached ``main`` is not silently
  moved to a newer commit (pin ``MODEL_REVISION`` to change commits). Otherwise ``fetch``
  asks the Hub for the file list with sizes and hashes, compares the missing bytes with the
  free space under the cache, and downloads the missing files, logging progress. Either
  way the engine gets the local snapshot path and the repo id becomes
  ``--served-model-name``, so clients still see the repo id; the MTP draft model
  (``Plan.draft_model``) follows ``plan.model``.

Only the files the engine loads are fetched (``ALLOW_PATTERNS``), by ``entrypoint.transfer``:
resumable across attempts and restarts from the bytes on disk (HTTP range requests), each
file verified against the Hub's hashes, and every request bounded by ``DOWNLOAD_STALL_S``
seconds without a byte. Nodes sharing a cache download once: the first takes the cache's
lease (``entrypoint.lease``), the others wait for it. ``HF_TOKEN`` (never printed),
``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` are honoured as
huggingface_hub defines them; ``MODEL_REVISION`` pins a branch, tag or commit.
``DOWNLOAD=0`` skips this module entirely.

Failures raise ``WeightsError`` (exit status 4): a local path that is not a checkpoint, a
cache folder without a usable snapshot, files missing in offline mode (named), a repository
or revision the Hub does not have or will not give with this token, too little disk space
(both numbers, in GB and bytes), a cache that cannot be written, a transfer that failed
or stalled ``DOWNLOAD_ATTEMPTS`` times in a row (``entrypoint.transfer``), or an answer from
``HF_ENDPOINT`` that the real Hub never gives: a commit, file name or hash that would not
stay a path in the cache (refused before anything is written), or a listing without what
the transfer needs. A bad ``HF_ENDPOINT``, or a stored Hub token that no HTTP header can
carry (``check_stored_token``), raises ``ConfigError`` (exit status 2).

``huggingface_hub`` is imported only when ``MODEL`` is a repo id and this step runs: the
launcher runs on every container start, and a local ``MODEL`` or ``DOWNLOAD=0`` must stay
light.
"""

from __future__ import annotations

import os

from .errors import WeightsError
from .output import format_gb, log, redact, redact_logs
from .settings import HUB_TRUE_VALUES as _TRUE  # huggingface_hub's "on" words
from .units import GB
from .values import CACHE_FOLDER_PREFIX, is_local_model, repo_id_of_cache_folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import ModuleType, TracebackType
    from typing import Any, TypeVar

    T = TypeVar("T")

    from .plan import Plan
    from .transfer import RemoteFile

# The files the engines load from a LongCat-Flash checkpoint, and nothing else. The
# meituan-longcat/LongCat-Flash-Chat(-FP8) repositories hold config.json and
# generation_config.json; the model code configuration_longcat_flash.py and
# modeling_longcat_flash.py (hence --trust-remote-code); tokenizer.json,
# tokenizer_config.json (which carries the chat template) and special_tokens_map.json; and
# the weights as model-000NN-of-000MM.safetensors shards listed in
# model.safetensors.index.json. Their README, figures and license are not loaded. The
# extra patterns cover other checkpoints given as MODEL: a chat_template.jinja file,
# SentencePiece (*.model), tiktoken and BPE/WordPiece vocabularies. PyTorch *.bin/*.pt
# duplicates are left out: with safetensors present, both engines load those.
ALLOW_PATTERNS = (
    "*.json",
    "*.py",
    "*.safetensors",
    "*.jinja",
    "*.model",
    "*.tiktoken",
    "merges.txt",
    "vocab.txt",
)
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DEFAULT_REVISION = "main"
CACHE_PREFIX = CACHE_FOLDER_PREFIX
# How often the download logs its progress.
PROGRESS_EVERY_S = 15.0


def is_local(model: str) -> bool:
    """True when ``MODEL`` names a local directory rather than a repo id (see settings)."""
    return is_local_model(model)


def hub_cache(env: Mapping[str, str]) -> str:
    """The Hugging Face hub cache for ``env``, by huggingface_hub's own rules.

    ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``), else ``HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``
    (huggingface_hub/constants.py). Computed here so the dry run and the checks need no
    import; the same path is passed to huggingface_hub explicitly.
    """

    def expand(path: str) -> str:
        return os.path.expanduser(os.path.expandvars(path))

    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return expand(explicit)
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return os.path.join(expand(home), "hub")


def hub_offline(env: Mapping[str, str]) -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is on, as huggingface_hub reads it."""
    value = env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in _TRUE


class Located:
    """Where the checkpoint is, found without network access.

    Attributes:
        model (str): ``MODEL`` as given.
        path (str | None): the local directory the engine should load; ``None`` while files
            are missing.
        repo_id (str | None): the Hub repository, for a repo id ``MODEL``.
        revision (str | None): the revision asked for (``MODEL_REVISION`` or ``main``).
        cache (str | None): the hub cache (``hub_cache``).
        missing (list[str] | None): the files known to be missing; ``None`` when the cache
            holds nothing that tells (nothing of this revision was cached).
    """

    def __init__(
        self,
        model: str,
        path: str | None = None,
        repo_id: str | None = None,
        revision: str | None = None,
        cache: str | None = None,
        missing: list[str] | None = None,
    ):
        self.model = model
        self.path = path
        self.repo_id = repo_id
        self.revision = revision
        self.cache = cache
        self.missing = missing

    @property
    def needs_download(self) -> bool:
        """True when files must be fetched into ``cache`` before the launch."""
        return self.path is None

    def plan_changes(self) -> dict[str, str]:
        """The plan fields this checkpoint sets (for ``Plan.replace``): the local path as
        ``model``. The name clients see stays the plan's ``served_model_name``, which
        ``entrypoint.plan`` chose from ``MODEL`` as given (``repo_id_of_cache_folder``)."""
        return {} if self.path is None else {"model": self.path}


# --- local directories ------------------------------------------------------------------


def _snapshot_of_cache_folder(folder: str, revision: str | None) -> str:
    """The snapshot directory of a cache repository folder (``models--org--name``).

    ``revision`` (``MODEL_REVISION``, ``None``: unset) names a snapshot (a commit) or a ref,
    ``refs/<revision>``, else ``refs/main``; with no such ref and one snapshot, that one.
    A ref is read only if it is a regular file, at most ``transfer.REF_MAX_BYTES``
    (``transfer.read_small_file``: a FIFO would block, ``/dev/zero`` never end).

    Raises:
        WeightsError: no snapshot matches; or the ref is something else than a file (a
            FIFO, a directory, a device), which huggingface_hub never writes: refused
            rather than passed over, since the only snapshot, served instead, may not be
            the commit that ref was meant to name.
    """
    from .transfer import REF_MAX_BYTES, NotAFile, read_small_file

    snapshots_dir = os.path.join(folder, "snapshots")
    try:
        snapshots = sorted(
            name
            for name in os.listdir(snapshots_dir)
            if os.path.isdir(os.path.join(snapshots_dir, name))
        )
    except OSError:
        snapshots = []
    wanted = revision or DEFAULT_REVISION
    if wanted in snapshots:
        return os.path.join(snapshots_dir, wanted)
    ref = os.path.join(folder, "refs", *wanted.split("/"))
    try:
        found = read_small_file(ref, REF_MAX_BYTES)
    except NotAFile as error:
        raise WeightsError(
            f"MODEL={folder} is a Hugging Face cache folder, but its ref {ref} is "
            f"{error.kind}, not a file holding a commit id (huggingface_hub writes each ref "
            "as a plain file). Remove it, set MODEL_REVISION to one of its snapshots "
            f"({', '.join(snapshots) or 'none'}), or set MODEL to a snapshot directory."
        ) from None
    except OSError:
        found = None
    commit = found[1].decode("utf-8", "replace").strip() if found else None
    if commit in snapshots:
        return os.path.join(snapshots_dir, commit)
    if revision is None and len(snapshots) == 1:
        return os.path.join(snapshots_dir, snapshots[0])
    try:
        refs = sorted(os.listdir(os.path.join(folder, "refs")))
    except OSError:
        refs = []
    raise WeightsError(
        f"MODEL={folder} is a Hugging Face cache folder, but it has no snapshot for "
        f"{'MODEL_REVISION=' + revision if revision else 'refs/main'} (snapshots: "
        f"{', '.join(snapshots) or 'none'}; refs: {', '.join(refs) or 'none'}). Set "
        "MODEL_REVISION to one of those, or MODEL to a snapshot directory."
    )


def _unreadable(model: str, path: str, error: OSError) -> WeightsError:
    return WeightsError(
        f"MODEL={model}: {path} cannot be read by this process (uid {os.geteuid()}): "
        f"{error.strerror or error}. Make the checkpoint readable to that user (chmod or "
        "chown on the host, or the container's user), or mount it elsewhere."
    )


def _locate_local(model: str, revision: str | None) -> Located:
    path = os.path.abspath(model)
    try:
        os.stat(path)
    except PermissionError as error:  # a folder on the way cannot be searched
        raise _unreadable(model, path, error) from None
    except OSError:
        pass
    if not os.path.isdir(path):
        raise WeightsError(
            f"MODEL={model} is not a directory on this host. Mount the checkpoint there "
            f"(docker run -v HOST_DIR:{path}), or set MODEL to a Hugging Face repo id."
        )
    try:
        os.listdir(path)
    except OSError as error:
        raise _unreadable(model, path, error) from None
    cache_folder = repo_id_of_cache_folder(path) is not None
    if cache_folder:
        path = _snapshot_of_cache_folder(path, revision)
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        try:
            os.listdir(path)
        except OSError as error:  # a snapshot folder that cannot be read
            raise _unreadable(model, path, error) from None
        raise WeightsError(
            f"MODEL={model}: {path} holds no config.json, so it is not a checkpoint. Point "
            "MODEL at the directory with config.json and the *.safetensors files."
        )
    try:
        with open(config, "rb"):
            pass
    except OSError as error:
        raise _unreadable(model, config, error) from None
    return Located(model, path=path if cache_folder else model)


# --- the Hugging Face cache -------------------------------------------------------------


# Variables huggingface_hub reads with int() when it is imported (constants.py, _as_int):
# another value, an empty one included, fails its import, which it reports on stdout.
_HUB_WHOLE_NUMBERS = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


def _hub() -> ModuleType:
    """``huggingface_hub``, imported now, its log records redacted (``output.redact_logs``:
    ``HF_DEBUG=1`` logs every request's URL); a clear refusal when it is not installed.

    Raises:
        ConfigError: a variable of ``_HUB_WHOLE_NUMBERS`` is not a whole number.
        WeightsError: huggingface_hub is not installed.
    """
    from .errors import ConfigError

    for name in _HUB_WHOLE_NUMBERS:  # read by os.environ, as huggingface_hub reads them
        raw = os.environ.get(name)
        if raw is not None:
            try:
                int(raw)
            except ValueError:
                raise ConfigError(
                    name, raw, "a whole number of seconds (read by huggingface_hub)"
                ) from None
    try:
        import huggingface_hub
    except ImportError:
        raise WeightsError(
            "MODEL is a Hugging Face repo id, but the huggingface_hub package "
            "is not installed here (the longcat-deploy images ship it). Install "
            "huggingface_hub, or set DOWNLOAD=0 to leave MODEL to the engine."
        ) from None
    redact_logs("huggingface_hub")
    return huggingface_hub


def _wanted(names: Iterable[str]) -> list[str]:
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

    return sorted(filter_repo_objects(list(names), allow_patterns=list(ALLOW_PATTERNS)))


def _weights_expected(snapshot: str, known: set[str]) -> set[str]:
    """The weight files a snapshot's own index names (the engine loads exactly those)."""
    index = os.path.join(snapshot, INDEX_FILE)
    if os.path.isfile(index):
        import json

        try:
            with open(index) as f:
                weight_map = json.load(f).get("weight_map") or {}
            return {INDEX_FILE, *map(str, weight_map.values())}
        except (OSError, ValueError, AttributeError):
            return {INDEX_FILE}
    if os.path.isfile(os.path.join(snapshot, SINGLE_FILE)):
        return {SINGLE_FILE}
    if any(name.endswith(".safetensors") for name in known):
        return set()
    return {INDEX_FILE}  # no weights at all yet: the index is the first thing missing


def cached_snapshot(repo_id: str, revision: str, cache: str) -> tuple[str | None, list[str] | None]:
    """Look for ``repo_id`` at ``revision`` in ``cache``, without network access.

    The files expected are those of the tree listing huggingface_hub cached with the
    snapshot (``get_cached_repo_tree``, huggingface_hub >= 1.x) that match
    ``ALLOW_PATTERNS``, plus ``config.json`` and the weight files the snapshot's safetensors
    index names (which older huggingface_hub releases, without a cached listing, rely on).

    Returns:
        (the snapshot directory or ``None``, the expected files not cached, or ``None`` when
        nothing of this revision is cached). Complete means a directory and ``[]``.
    """
    hub = _hub()

    def cached(name: str) -> str | None:
        found = hub.try_to_load_from_cache(repo_id, name, cache_dir=cache, revision=revision)
        return found if isinstance(found, str) else None

    expected: set[str] = set()
    known = False
    get_tree = getattr(hub, "get_cached_repo_tree", None)
    if get_tree is not None:
        try:
            listing = get_tree(repo_id, revision=revision, cache_dir=cache)
        except Exception:  # CachedRepoTreeNotFoundError: never fetched here at this revision
            listing = None
        if listing is not None:
            expected.update(_wanted(entry.path for entry in listing))
            known = True
    config = cached("config.json")
    snapshot = os.path.dirname(config) if config else None
    if snapshot is not None:
        expected.add("config.json")
        expected.update(_weights_expected(snapshot, expected))
        known = True
    if not known:
        return None, None
    return snapshot, sorted(name for name in expected if cached(name) is None)


def _names(files: list[str], limit: int = 8) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def locate(plan: Plan, values: Mapping[str, Any], env: Mapping[str, str]) -> Located:
    """Find the checkpoint ``plan.model`` names on this host, without network access.

    Args:
        plan: this node's plan.
        values: the settings' values (``MODEL_REVISION``).
        env: the environment (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``).

    Returns:
        ``Located``: ready (``path`` set) or needing a download (``needs_download``).

    Raises:
        WeightsError: a local ``MODEL`` that is not a checkpoint or cannot be read; files
            missing while ``HF_HUB_OFFLINE`` is on.
        ConfigError: ``HF_ENDPOINT`` is not a URL (for a repo id).
    """
    return locate_model(plan.model, values.get("MODEL_REVISION"), env)


def locate_model(model: str, revision: str | None, env: Mapping[str, str]) -> Located:
    """``locate`` for a ``MODEL`` and a ``MODEL_REVISION`` (``None``: unset), without a plan."""
    if is_local(model):
        return _locate_local(model, revision)
    revision = revision or DEFAULT_REVISION
    hub_endpoint(env)  # before huggingface_hub, which reports a bad one as a bad repo id
    cache = hub_cache(env)
    try:
        snapshot, missing = cached_snapshot(model, revision, cache)
    except ValueError as error:  # huggingface_hub's HFValidationError: a name it refuses
        raise WeightsError(
            f"MODEL={model} (MODEL_REVISION={revision}) is refused by huggingface_hub: {error}"
        ) from None
    located = Located(model, repo_id=model, revision=revision, cache=cache, missing=missing)
    if snapshot is not None and not missing:
        located.path = snapshot
        log(f"weights: {model}@{revision} is complete in the cache, using {snapshot}")
    elif hub_offline(env):
        what = (
            f"these files are missing: {_names(missing)}" if missing else "nothing of it is cached"
        )
        raise WeightsError(
            f"HF_HUB_OFFLINE is on and {model}@{revision} is not complete in the cache "
            f"{cache}: {what}. Fill the cache (with network access, or by mounting a cache "
            "that holds the checkpoint at HF_HOME), or unset HF_HUB_OFFLINE."
        )
    return located


# --- the download -----------------------------------------------------------------------

ENDPOINT_ACCEPTED = "an http:// or https:// URL of a Hub, such as https://huggingface.co"


PROXY_ACCEPTED = "a proxy URL, such as http://proxy.example:3128 (user info percent-encoded)"
# A "/", "?" or "#" in a URL's password ends its authority early (RFC 3986, section 3.2):
# the rest of the password then reads as a port or a path, and an error quotes it.
USERINFO_SPLIT = (
    "Its user info holds a '/', '?' or '#', which ends the host part early: "
    "percent-encode them in the password (%2F, %3F, %23)."
)


# The proxy schemes httpx takes (httpx/_config.py and httpx2/_config.py, Proxy.__init__:
# "http", "https", "socks5", "socks5h"); any other ends in "Unknown scheme for proxy URL".
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def _has_socksio() -> bool:
    """Whether ``socksio`` is importable: httpx needs it for a SOCKS proxy (httpx's
    ``_transports/default.py``: "Using SOCKS proxy, but the 'socksio' package is not
    installed")."""
    import importlib.util

    return importlib.util.find_spec("socksio") is not None


def check_proxies(env: Mapping[str, str]) -> None:
    """Refuse a proxy variable (``entrypoint.settings.proxy_variables``) that is not a URL
    httpx can use, before
    any request, with its value unshown when it holds user info: a malformed one would end
    in an error that quotes part of the password (``Invalid port: 'PASSWORD'``), where
    redaction no longer sees a URL.

    Raises:
        ConfigError: naming the variable; whitespace, a port that is not a number, no
            host, a scheme httpx cannot use (``PROXY_SCHEMES``), or user info that a
            ``/``, ``?`` or ``#`` cut short.
    """
    from urllib.parse import urlsplit

    from .errors import ConfigError
    from .settings import proxy_variables

    for name in proxy_variables(env):
        raw = (env.get(name) or "").strip()
        if not raw:
            continue
        hide = "@" in raw
        # httpx takes a proxy without a scheme as http:// (httpx/_utils.py).
        url = raw if "://" in raw else f"http://{raw}"
        problem = None
        try:
            parts = urlsplit(url)
            if hide and "@" not in parts.netloc:
                problem = USERINFO_SPLIT
            elif parts.scheme.lower() not in PROXY_SCHEMES:
                problem = f"Its scheme is not one httpx can use: {', '.join(PROXY_SCHEMES)}."
            elif parts.scheme.lower().startswith("socks") and not _has_socksio():
                problem = (
                    "httpx needs the socksio package for a SOCKS proxy, and it is not "
                    "installed here: use an http:// proxy, or install socksio."
                )
            else:
                parts.port  # noqa: B018 - parses the port, raising ValueError on a bad one
                if not parts.hostname:
                    problem = "It names no host."
        except ValueError:
            problem = "It is not a URL (a bracket or its port is malformed)."
        if problem is None and any(c.isspace() for c in raw):
            problem = "It holds a space: percent-encode it (%20)."
        if problem is not None:
            raise ConfigError(name, raw, PROXY_ACCEPTED, problem, hide_value=hide)


def check_certificate_paths(env: Mapping[str, str]) -> None:
    """Refuse ``SSL_CERT_FILE`` that is not a regular file, and ``SSL_CERT_DIR`` that is not
    a directory, before any request.

    OpenSSL reads them when the Hub client makes its TLS context (``ssl``'s
    ``set_default_verify_paths``; httpx 0.x reads ``SSL_CERT_FILE`` itself, httpx/_config.py):
    a missing file ends in a ``FileNotFoundError`` that names no file, and a FIFO blocks the
    client's first request.

    Raises:
        ConfigError: naming the variable and its path (exit status 2).
    """
    from .errors import ConfigError

    for name, wanted in (("SSL_CERT_FILE", "a regular file"), ("SSL_CERT_DIR", "a directory")):
        path = (env.get(name) or "").strip()
        if not path:
            continue
        ok = os.path.isfile(path) if name == "SSL_CERT_FILE" else os.path.isdir(path)
        if not ok:
            where = "nothing is there" if not os.path.lexists(path) else f"it is not {wanted}"
            raise ConfigError(
                name,
                path,
                f"{wanted} of CA certificates in PEM (read by OpenSSL)",
                f"{where.capitalize()}. Mount the certificates there, or unset {name}.",
            )


def hub_endpoint(env: Mapping[str, str]) -> str | None:
    """``HF_ENDPOINT``, checked: ``None`` when unset (huggingface_hub's default Hub).

    The proxy variables and the certificate paths are checked first (``check_proxies``,
    ``check_certificate_paths``).

    Raises:
        ConfigError: it is not an http(s) URL with a host (``http://[::1`` included, which
            huggingface_hub itself reports only as a refused repo id), or its user info
            was cut short (``USERINFO_SPLIT``); the value is not quoted when it holds an
            ``@`` (user info, which may hold a password). A proxy variable, likewise.
    """
    check_proxies(env)
    check_certificate_paths(env)
    raw = (env.get("HF_ENDPOINT") or "").strip()
    if not raw:
        return None
    from urllib.parse import urlsplit

    from .errors import ConfigError

    # A URL with user info may hold a password that a malformed URL hides from redaction
    # (an unencoded "/" in it): such a value is refused unshown.
    hide = "@" in raw
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - parses the port, raising ValueError on a bad one
    except ValueError as error:
        raise ConfigError(
            "HF_ENDPOINT",
            raw,
            ENDPOINT_ACCEPTED,
            f"It is not a URL: {error}." if not hide else "It is not a URL.",
            hide_value=hide,
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("HF_ENDPOINT", raw, ENDPOINT_ACCEPTED, hide_value=hide)
    if hide and "@" not in parts.netloc:
        raise ConfigError("HF_ENDPOINT", raw, ENDPOINT_ACCEPTED, USERINFO_SPLIT, hide_value=True)
    if any(c.isspace() for c in raw):  # no URL holds one (RFC 3986, section 2)
        raise ConfigError(
            "HF_ENDPOINT",
            raw,
            ENDPOINT_ACCEPTED,
            "It holds a space: percent-encode it (%20).",
            hide_value=hide,
        )
    return raw.rstrip("/")


def _free_bytes(directory: str) -> int:
    import shutil

    path = os.path.abspath(directory)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def _summary(error: Exception) -> str:
    """``Type: first line of the message (HTTP status)``, with every secret blanked
    (``entrypoint.output.redact``: all of them at once, so one that holds or overlaps
    another is blanked whole), and no "." or ":" at its end (a message goes on after it)."""
    text = str(error).strip()
    text = text.splitlines()[0].rstrip(".: ") if text else ""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(status, int) and str(status) not in text:
        text = f"{text} (HTTP {status})" if text else f"HTTP {status}"
    return f"{type(error).__name__}: {redact(text)}"


def _unreadable_listing(error: Exception) -> str | None:
    """What a model listing lacks, when ``error`` is ``HfApi.model_info`` failing to read the
    answer; ``None`` for any other error (a refusal, the network, an argument it refuses).

    ``model_info`` reads the body as JSON and builds ``ModelInfo(**data)``, which takes
    ``data["id"]``, each sibling's ``["rfilename"]`` and an LFS entry's ``["sha256"]``,
    ``["size"]``, ``["pointerSize"]`` as given (huggingface_hub ``hf_api.py``,
    ``HfApi.model_info`` and ``ModelInfo.__init__``): a key missing raises ``KeyError``, an
    entry that is not an object ``TypeError`` or ``AttributeError``, a body that is not JSON
    ``json.JSONDecodeError``, an unreadable date ``ValueError``. ``HFValidationError`` (an
    argument refused before any request) and ``UnicodeDecodeError`` (also what reading a
    stored token file that is not UTF-8 raises) are left to ``HubRepo.refuse``.
    """
    import json

    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    if isinstance(error, HfHubHTTPError):  # an answer with its status: a ValueError too
        return None
    if isinstance(error, KeyError) and error.args:
        return f"it has no {error.args[0]!r}"
    if isinstance(error, json.JSONDecodeError):
        return f"it is not JSON ({error.msg} at character {error.pos})"
    if isinstance(error, (TypeError, AttributeError)):
        return f"an entry is not of the type the Hub sends ({_summary(error)})"
    if isinstance(error, ValueError) and not isinstance(
        error, (HFValidationError, UnicodeDecodeError)
    ):
        return f"a value the Hub sends is not readable ({_summary(error)})"
    return None


def _blobs_on_disk(blobs: str) -> int:
    """Bytes under a repository's ``blobs`` folder, finished and partial files alike."""
    total = 0
    try:
        with os.scandir(blobs) as entries:
            for entry in entries:
                try:  # a partial file may be renamed or removed meanwhile
                    total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
    except OSError:  # no blobs folder yet
        pass
    return total


class _Progress:
    """Logs the bytes fetched so far every ``PROGRESS_EVERY_S``, from a background thread.

    It measures what is on disk under the repository's ``blobs`` folder in the cache
    (finished and partial files alike), so a node waiting for another one's download
    measures it the same way. The rate is the current one, over the last interval (not an
    average since the start), and a transfer that delivers nothing says for how long.
    """

    def __init__(
        self,
        folder: str,
        total: int,
        log: Callable[[str], None],
        prefix: str = "download",
        from_zero: bool = False,
    ):
        import threading
        import time

        self.blobs = os.path.join(folder, "blobs")
        self.total, self.log, self.prefix = total, log, prefix
        self.clock = time.monotonic
        self.base = 0 if from_zero else self._on_disk()
        self.last = (self.clock(), self.base)
        self.quiet_since = self.last[0]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="download-progress", daemon=True)

    def _on_disk(self) -> int:
        return _blobs_on_disk(self.blobs)

    def sample(self) -> tuple[int, str]:
        """(bytes fetched since the start, the progress text)."""
        now, disk = self.clock(), self._on_disk()
        then, before = self.last
        rate = max(0, disk - before) / max(now - then, 1e-9)
        self.last = (now, disk)
        if disk != before:
            self.quiet_since = now
        done = max(0, disk - self.base)
        text = f"{done / GB:.2f} of {self.total / GB:.2f} GB"
        if self.total:
            text += f" ({100 * min(done, self.total) / self.total:.0f}%)"
        text += f", {rate / 1e6:.1f} MB/s now"
        if rate > 0 and self.total > done:
            text += f", about {(self.total - done) / rate / 60:.0f} min left"
        elif self.total > done and now - self.quiet_since >= 1:
            text += f", no new byte for {now - self.quiet_since:.0f} s"
        return done, text

    def line(self) -> str:
        return f"{self.prefix}: {self.sample()[1]}"

    def _run(self) -> None:
        while not self.stop.wait(PROGRESS_EVERY_S):
            self.log(self.line())

    def __enter__(self) -> _Progress:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop.set()
        self.thread.join()


class _ExitOnSignals:
    """While active (in the main thread), SIGINT and SIGTERM end the process at once.

    The handler drops the download lease, says what is kept, and calls ``os._exit(128 +
    signal)``: 130 for SIGINT, 143 for SIGTERM. Not an exception: huggingface_hub's client
    and the transfer threads may be inside blocking calls, and the interpreter would wait
    for them at exit; the partial files are meant to stay (the next start resumes them).
    """

    def __init__(self, cleanup: Callable[[], None], log: Callable[[str], None]):
        self.cleanup, self.log = cleanup, log
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        import signal

        try:
            self.cleanup()
            self.log(
                f"weights: {signal.Signals(signum).name}: stopping; the bytes fetched "
                "so far stay in the cache, and the next start resumes them"
            )
        finally:
            os._exit(128 + signum)

    def __enter__(self) -> _ExitOnSignals:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def check_stored_token(env: Mapping[str, str]) -> None:
    """Refuse the stored Hub token when huggingface_hub would send it and no HTTP header can
    carry it; call before any request to the Hub.

    huggingface_hub sends the token stored in a file (``hf auth login``'s, at
    ``HF_TOKEN_PATH``) when neither ``HF_TOKEN`` nor ``HUGGING_FACE_HUB_TOKEN`` is set
    (``utils/_auth.py``, ``get_token``) and ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` is off
    (``utils/_headers.py``, ``get_token_to_send``). Its text goes in the
    ``Authorization: Bearer`` header; text that is not UTF-8, not ASCII, or holds a control
    character ends in a decoding or protocol error, which looks like a network failure, and
    a space inside is sent and refused. The rules are those ``entrypoint.values.check_secret``
    applies to ``HF_TOKEN``: printable ASCII, no whitespace. The text is the one
    ``entrypoint.settings.stored_hub_token`` reads, from the file huggingface_hub reads
    (``entrypoint.settings.stored_hub_token_path``), which the message names. A path that
    huggingface_hub cannot read as a token at all (a FIFO, a device, a directory, a file
    over 16 KiB: ``_not_a_token_file``) is refused before anything reads it.

    Raises:
        StoredTokenError: a ``ConfigError`` (exit status 2) naming the file and what is
            wrong, never the text.
    """
    if env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or env.get("HF_OIDC_RESOURCE"):
        return
    # huggingface_hub constants.py, _is_true: ENV_VARS_TRUE_VALUES, upper case, unstripped.
    if (env.get("HF_HUB_DISABLE_IMPLICIT_TOKEN") or "").upper() in _TRUE:
        return
    from .errors import StoredTokenError
    from .settings import stored_hub_token, stored_hub_token_path

    path = stored_hub_token_path(env)
    unreadable = _not_a_token_file(path)
    if unreadable:
        raise StoredTokenError(path, unreadable)
    token = stored_hub_token(env)
    if token is None:
        return
    if "\ufffd" in token:  # stored_hub_token decodes with errors="replace"
        why = "it is not UTF-8 text"
    elif _starts_with_bom(path):  # stored_hub_token drops it; huggingface_hub sends it
        why = "it starts with a byte-order mark, which huggingface_hub would send in the token"
    elif not token.isascii():
        why = (
            "it holds a character outside ASCII, which an HTTP header (Authorization: "
            "Bearer ...) cannot carry"
        )
    elif not token.isprintable() or any(c.isspace() for c in token):
        why = "it holds whitespace or a control character (a space, a tab, a NUL)"
    else:
        return
    raise StoredTokenError(path, why)


def _not_a_token_file(path: str) -> str | None:
    """Why huggingface_hub cannot read the file at ``path`` as a token, in words; ``None``
    when it can, or when there is no file there (no token is sent).

    huggingface_hub reads the whole file (``utils/_auth.py``, ``_get_token_from_file``:
    ``Path(HF_TOKEN_PATH).read_text()``, catching only ``FileNotFoundError``): a FIFO
    blocks the launch until a writer comes, ``/dev/zero`` fills memory, a directory ends in
    ``IsADirectoryError``, and a file of gigabytes is read whole into the header it sends.
    Only a regular file of at most ``settings.MAX_TOKEN_FILE_BYTES`` (16 KiB), or
    ``/dev/null`` (no token), can be read as one. Not-found and other ``stat`` errors give
    ``None`` (huggingface_hub then finds no token, or names the error).
    """
    import stat

    from .settings import MAX_TOKEN_FILE_BYTES

    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    if stat.S_ISREG(st.st_mode):
        if st.st_size > MAX_TOKEN_FILE_BYTES:
            return (
                f"it is {st.st_size} bytes, more than a file of tokens holds "
                f"({MAX_TOKEN_FILE_BYTES} bytes), and huggingface_hub would read it whole"
            )
        return None
    try:
        if os.path.samestat(st, os.stat(os.devnull)):
            return None  # reads empty: no token
    except OSError:
        pass
    from .transfer import file_kind

    why = {
        stat.S_IFIFO: ", which huggingface_hub would wait on for ever",
        stat.S_IFCHR: ", which huggingface_hub would read without end",
    }.get(stat.S_IFMT(st.st_mode), "")
    return f"it is {file_kind(st.st_mode)}{why}, not a regular file"


def credential_sent(env: Mapping[str, str]) -> str | None:
    """Which token the launcher's Hub requests carry, in words for a message:
    ``"HF_TOKEN"``, ``"the token HF_OIDC_RESOURCE's exchange gives"``,
    ``"HUGGING_FACE_HUB_TOKEN"``, ``"the token stored in PATH"``, or ``None`` for none.

    ``HF_TOKEN`` is passed to huggingface_hub as the token to send; without it,
    huggingface_hub picks (``utils/_headers.py``, ``get_token_to_send``: none with
    ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` on; ``utils/_auth.py``, ``get_token``: the OIDC
    exchange when ``HF_OIDC_RESOURCE`` is set, then ``HUGGING_FACE_HUB_TOKEN``, then the
    stored token).
    """
    if env.get("HF_TOKEN"):
        return "HF_TOKEN"
    if (env.get("HF_HUB_DISABLE_IMPLICIT_TOKEN") or "").upper() in _TRUE:
        return None
    if env.get("HF_OIDC_RESOURCE"):
        return "the token HF_OIDC_RESOURCE's exchange gives"
    if env.get("HUGGING_FACE_HUB_TOKEN"):
        return "HUGGING_FACE_HUB_TOKEN"
    from .settings import stored_hub_token, stored_hub_token_path

    if stored_hub_token(env) is None:
        return None
    return f"the token stored in {stored_hub_token_path(env)}"


def check_stored_tokens(env: Mapping[str, str]) -> None:
    """Check huggingface_hub's stored-tokens file before it reads it. The tokens it holds
    are secrets from the launcher's start (``entrypoint.settings.stored_tokens``).

    Whenever huggingface_hub sends the stored token (``credential_sent``), it first reads
    ``stored_tokens`` (``entrypoint.settings.stored_tokens_path``) to find that token's
    OAuth refresh token (``utils/_auth.py``, ``_refresh_oauth_token_if_needed``, through
    ``_read_stored_tokens_full``: ``configparser.ConfigParser(interpolation=None)``, UTF-8).
    That file holds every account's token and refresh token. A file it cannot parse is
    logged with the offending lines quoted (``"Error parsing stored tokens file: ..."``),
    tokens included; a FIFO blocks it. So such a file is refused here, before it is read
    (the same rules as the token file: ``_not_a_token_file``). Nothing is checked when the
    stored token is not sent, or there is no such file.

    Raises:
        StoredTokenError: (exit status 2) naming the file and what is wrong, no content.
    """
    if not (credential_sent(env) or "").startswith("the token stored in"):
        return
    from .errors import StoredTokenError
    from .settings import MAX_TOKEN_FILE_BYTES, stored_tokens_path

    path = stored_tokens_path(env)
    if not os.path.lexists(path):
        return
    unreadable = _not_a_token_file(path)
    if unreadable:
        raise StoredTokenError(path, unreadable, what="huggingface_hub's stored tokens")
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, "rb") as f:
            parser.read_string(f.read(MAX_TOKEN_FILE_BYTES).decode("utf-8"))
    except OSError as error:
        why = f"it cannot be read ({error.strerror})"
        raise StoredTokenError(path, why, what="huggingface_hub's stored tokens") from None
    except (configparser.Error, UnicodeDecodeError):
        raise StoredTokenError(
            path,
            "it is not the INI file huggingface_hub writes (a [name] section, then "
            "hf_token = ...), and huggingface_hub would print its lines",
            what="huggingface_hub's stored tokens",
        ) from None


# The file listing's total deadline beyond twice the stall bound: huggingface_hub's own first
# request, for its agent registry (utils/_detect_agent.py, _REGISTRY_FETCH_TIMEOUT, 3 s),
# runs inside the listing's call, and a silent Hub must still end on the per-read bound.
LISTING_EXTRA_S = 5.0


def listing_deadline(stall_s: float) -> float:
    """Seconds the file listing may take in all, however slowly its bytes come:
    ``2 * stall_s + LISTING_EXTRA_S``."""
    return 2 * stall_s + LISTING_EXTRA_S


class Unanswered(Exception):
    """A Hub request that did not finish within its total deadline (``within``)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"no complete answer within {seconds:g} s")


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``'s result, or ``Unanswered`` when it has not returned after ``seconds``.

    huggingface_hub bounds each socket operation only (``timeout=``, httpx's read timeout
    is per read): a server that sends a byte now and then holds a request for ever. The
    call runs in a daemon thread the caller waits for; one that misses the deadline is
    left to end with the process. Signals still reach the waiting thread.

    Raises:
        Unanswered: after ``seconds``. Whatever ``call`` raised, as it raised it.
    """
    import threading

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as error:  # raised again in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=run, name="hub-request", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise Unanswered(seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def resolve_hub_token(env: Mapping[str, str], stall_s: float, endpoint: str) -> str | None:
    """The token every Hub request of this launch carries, resolved once, before any
    request, within ``stall_s`` seconds; ``None`` for none.

    ``HF_TOKEN`` as it is. Without it, what huggingface_hub would pick
    (``utils/_headers.py``, ``get_token_to_send(None)``; ``credential_sent`` lists the
    order): that may exchange ``HF_OIDC_ID_TOKEN`` for a token (``_oidc.py``,
    ``oidc_login``) or refresh an expiring OAuth token stored by ``hf auth login``
    (``utils/_auth.py``, ``_refresh_oauth_token_if_needed``), each a request to
    ``HF_ENDPOINT``'s ``/oauth/token`` that huggingface_hub bounds per socket operation
    only (``HF_HUB_DOWNLOAD_TIMEOUT``), or not at all. It runs in a thread the launch waits
    for at most ``stall_s`` (``DOWNLOAD_STALL_S``), as long as any other Hub request. The
    stored-tokens file is checked first (``check_stored_tokens``); a refreshed or exchanged
    token, and the stored tokens as the refresh leaves them, are blanked in all output from
    then (the launcher blanks the stored tokens from its start).
    Callers pass the result as ``token=`` (``False`` for none), so huggingface_hub does
    not pick again on each request.

    Args:
        env: the environment (``HF_TOKEN``, ``HF_OIDC_RESOURCE``; huggingface_hub reads
            the process's own). stall_s: the bound, in seconds. endpoint: the Hub's URL,
            for messages.

    Raises:
        StoredTokenError: the stored token's file, or the stored-tokens file, cannot be
            read (exit status 2).
        ConfigError: ``HF_OIDC_RESOURCE`` is set but huggingface_hub has no identity token
            to exchange (``OIDCError``; exit status 2).
        WeightsError: the exchange failed, no answer came within ``stall_s``, or
            ``HF_HOME`` is a file (exit status 4).
    """
    if env.get("HF_TOKEN"):
        return env["HF_TOKEN"]
    from huggingface_hub.errors import OIDCError
    from huggingface_hub.utils import get_token_to_send  # type: ignore[attr-defined]

    from .errors import ConfigError, StoredTokenError
    from .output import blank_also
    from .settings import stored_hub_token_path, stored_tokens, stored_tokens_path

    check_stored_tokens(env)
    resource = env.get("HF_OIDC_RESOURCE")
    what = (
        f"the exchange of an identity token for HF_OIDC_RESOURCE={resource}"
        if resource
        else f"the refresh of the OAuth token stored in {stored_hub_token_path(env)}"
    )
    try:
        token = within(stall_s, lambda: get_token_to_send(None))
    except Unanswered:
        waits = (
            f"{endpoint} did not answer"
            if resource
            else f"{endpoint} did not answer, or another process holds "
            f"{stored_tokens_path(env)}.lock"
        )
        raise WeightsError(
            f"cannot get the Hub token: {what} did not finish within {stall_s:g} s "
            f"(DOWNLOAD_STALL_S): {waits}. Check the network path to {endpoint} "
            "(HF_ENDPOINT, proxy, firewall), or set HF_TOKEN."
        ) from None
    except OIDCError as error:
        raise ConfigError(
            "HF_OIDC_RESOURCE",
            resource,
            "a Hub repo or user name to scope a Trusted Publishers token to, with an "
            "identity token to exchange (HF_OIDC_ID_TOKEN, or GitHub Actions' own)",
            f"huggingface_hub: {_summary(error)}. Set HF_OIDC_ID_TOKEN, or unset "
            "HF_OIDC_RESOURCE and set HF_TOKEN.",
        ) from None
    except NotADirectoryError as error:  # HF_HOME (or HF_TOKEN_PATH's folder) a file
        raise WeightsError(
            f"cannot read the stored Hub token: {error.strerror}: {error.filename}. HF_HOME "
            "(and HF_TOKEN_PATH, when set) must be a directory the launcher can read and "
            "write, not a file"
        ) from None
    except Exception as error:
        if isinstance(error, OSError) and error.filename is not None:
            raise StoredTokenError(
                str(error.filename), f"it cannot be read ({error.strerror})"
            ) from None
        raise WeightsError(
            f"cannot get the Hub token: {what} failed: {_summary(error)}. Check "
            "HF_OIDC_RESOURCE and HF_OIDC_ID_TOKEN, or set HF_TOKEN."
            if resource
            else f"cannot get the Hub token: {_summary(error)}."
        ) from None
    # A refresh may have saved a new token and a rotated refresh token (_save_token).
    blank_also(stored_tokens(env))
    if not isinstance(token, str) or not token:
        return None
    blank_also([token])
    if token.strip() != token or not (token.isascii() and token.isprintable()) or " " in token:
        # Only a refresh or an exchange can give one: the other sources are checked first.
        raise WeightsError(
            f"cannot get the Hub token: {what} gave a token that is not printable ASCII "
            "without spaces, which no HTTP header can carry (huggingface_hub saves a "
            "refreshed one in its token file). Run `hf auth login` again, or set HF_TOKEN."
        )
    return token


def _starts_with_bom(path: str) -> bool:
    """Whether the file at ``path`` starts with UTF-8's byte-order mark (EF BB BF)."""
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False


class HubRepo:
    """One repository at one revision, as huggingface_hub reaches it on the Hub: the files
    the engine loads, with sizes and hashes, and each refusal in words.

    Args:
        repo: the repo id. revision: a branch, tag or commit.
        env: the environment (``HF_ENDPOINT``, ``HF_TOKEN``).
        stall_s: the bound on each request (``DOWNLOAD_STALL_S``).
        missing_here: appended to refusals (which files the cache lacks).

    Raises:
        ConfigError: ``HF_ENDPOINT`` is not a URL; the stored token cannot be sent
            (``check_stored_token``).
    """

    def __init__(
        self,
        repo: str,
        revision: str,
        env: Mapping[str, str],
        stall_s: float,
        missing_here: str = "",
    ):
        _hub()
        from huggingface_hub import HfApi, constants

        self.repo, self.revision, self.stall_s = repo, revision, stall_s
        self.endpoint = hub_endpoint(env)
        check_stored_token(env)
        self.credential = credential_sent(env)
        # HfApi's own default without an endpoint (hf_api.py, HfApi.__init__).
        self.token = resolve_hub_token(env, stall_s, self.endpoint or constants.ENDPOINT)
        # token=False: none, and huggingface_hub does not pick one again per request.
        self.api = HfApi(endpoint=self.endpoint, token=self.token or False)
        self.where = f"{repo}@{revision}"
        self.missing_here = missing_here
        self.hub_at = (
            f"the Hub at {self.api.endpoint} "
            f"({'HF_ENDPOINT' if self.endpoint else 'HF_ENDPOINT is unset'})"
        )
        self.check_path = (
            f"Check the network path to {self.api.endpoint} (HF_ENDPOINT, "
            "proxy, firewall), or fill the cache at HF_HOME and set "
            "HF_HUB_OFFLINE=1"
        )

    def refuse(self, error: Exception, doing: str) -> WeightsError:
        """The message for ``error`` while ``doing`` (``"look up"``, ``"fetch X of"``)."""
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        # httpx in 1.x, httpx2 in 2.x: "the same export across major versions"
        # (huggingface_hub/utils/__init__.py, __getattr__).
        from huggingface_hub.utils import httpx  # type: ignore[attr-defined]

        from .transfer import DOWNLOAD_ATTEMPTS

        repo, endpoint = self.repo, self.api.endpoint
        lacks = f"{self.credential} lacks access" if self.credential else "HF_TOKEN is not set"
        status = getattr(getattr(error, "response", None), "status_code", None)
        if isinstance(error, GatedRepoError):
            why = (
                f"{repo} is gated: accept its terms on its Hub page with your account, "
                "then set HF_TOKEN to a token of that account"
            )
        elif isinstance(error, RepositoryNotFoundError):
            why = (
                f"{endpoint} has no repository {repo}, or it is private and {lacks}. Check "
                "MODEL and HF_TOKEN"
            )
        elif isinstance(error, RevisionNotFoundError):
            why = (
                f"{repo} has no revision {self.revision!r}. Set MODEL_REVISION to a "
                "branch, tag or commit of it"
            )
        elif isinstance(error, httpx.TimeoutException):
            why = (
                f"{endpoint} sent nothing for {self.stall_s:g} s (DOWNLOAD_STALL_S), "
                f"{DOWNLOAD_ATTEMPTS} times. {self.check_path}"
            )
        elif isinstance(error, Unanswered):
            why = (
                f"{endpoint} did not answer in full within {error.seconds:g} s (twice "
                f"DOWNLOAD_STALL_S, and {LISTING_EXTRA_S:g} s), {DOWNLOAD_ATTEMPTS} times. "
                f"{self.check_path}"
            )
        elif isinstance(error, OSError) and error.filename is not None:
            # A local path, not the network: huggingface_hub reads its stored token under
            # HF_HOME (HF_TOKEN_PATH) before it sends anything.
            why = (
                f"{error.strerror}: {error.filename}. HF_HOME (and HF_TOKEN_PATH, when set) "
                "must be a directory the launcher can read and write, not a file"
            )
        elif isinstance(error, HfHubHTTPError) and status == 401:
            why = f"{endpoint} answered 401 Unauthorized ({_summary(error)}): " + (
                f"it refused {self.credential} (expired, revoked or mistyped): set "
                "HF_TOKEN to a valid token, or run `hf auth login` again"
                if self.credential
                else f"HF_TOKEN is not set, and {repo} needs a token that can read it"
            )
        elif isinstance(error, HfHubHTTPError) and status == 403:
            why = (
                f"{endpoint} answered 403 Forbidden ({_summary(error)}). "
                f"{lacks}: use a token that "
                f"can read {repo}, or check what a proxy or mirror at HF_ENDPOINT allows"
            )
        else:
            why = f"{_summary(error)}. {self.check_path}"
        return WeightsError(f"cannot {doing} {self.where}: {why}{self.missing_here}.")

    @staticmethod
    def transient(error: Exception) -> bool:
        """True for errors worth another request: timeouts, connections, 408, 429, 5xx."""
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import httpx  # type: ignore[attr-defined]

        if isinstance(error, HfHubHTTPError):
            status = getattr(getattr(error, "response", None), "status_code", None)
            return status is None or status in (408, 429) or status >= 500
        return isinstance(error, (httpx.HTTPError, Unanswered))

    def files(self, log: Callable[[str], None]) -> tuple[str, list[RemoteFile]]:
        """(the commit, the files the engine loads there): ``HfApi.model_info`` with files
        metadata, each request bounded by ``stall_s``, ``DOWNLOAD_ATTEMPTS`` tries.

        Raises:
            WeightsError: a refusal, no answer, or not a checkpoint (no config.json, no
                safetensors); a listing that lacks what the transfer needs (a commit, a
                file's name, size or hash) or holds it as another type; a commit, file name
                or hash that would not stay a path in the cache (``entrypoint.transfer``,
                ``UnsafeName``).
        """
        import time

        from .transfer import DOWNLOAD_ATTEMPTS, RETRY_PAUSE_S, UnreadableListing, UnsafeName

        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                info = within(
                    listing_deadline(self.stall_s),
                    lambda: self.api.model_info(
                        self.repo, revision=self.revision, files_metadata=True, timeout=self.stall_s
                    ),
                )
                break
            except Exception as error:
                unreadable = _unreadable_listing(error)
                if unreadable is not None:
                    raise self.cannot_read(unreadable) from None
                if attempt == DOWNLOAD_ATTEMPTS or not self.transient(error):
                    raise self.refuse(error, "look up") from None
                log(
                    f"weights: looking up {self.where}: {_summary(error)}; trying "
                    f"again (attempt {attempt + 1} of {DOWNLOAD_ATTEMPTS})"
                )
                time.sleep(RETRY_PAUSE_S)
        try:
            return self._checkpoint_files(info)
        except UnreadableListing as error:
            raise self.cannot_read(str(error)) from None
        except UnsafeName as error:
            raise WeightsError(
                f"cannot fetch {self.where}: {self.hub_at} answered with {error}. Such a "
                "name would become a path outside the cache, or not the one huggingface_hub "
                "gives it, so nothing was written; the Hub itself never sends one. Check "
                "what answers at HF_ENDPOINT: a mirror or a proxy that rewrites the Hub's "
                f"answers{self.missing_here}."
            ) from None

    def _checkpoint_files(self, info: Any) -> tuple[str, list[RemoteFile]]:
        """(the commit, the files the engine loads) from ``HfApi.model_info``'s answer, each
        name that becomes a path checked (``entrypoint.transfer``, ``check_commit``,
        ``RemoteFile``), before anything is written.

        Raises:
            UnreadableListing, UnsafeName: from ``entrypoint.transfer``.
            WeightsError: not a checkpoint (no config.json, no safetensors).
        """
        from .transfer import RemoteFile, UnreadableListing, check_commit

        if info.sha is None:
            raise UnreadableListing("it has no 'sha' (the commit id)")
        if not isinstance(info.siblings, list):
            raise UnreadableListing("it has no 'siblings' (the file list)")
        for sibling in info.siblings:
            if not isinstance(sibling.rfilename, str):
                raise UnreadableListing(f"the 'rfilename' {sibling.rfilename!r:.80} is not text")
        commit = check_commit(info.sha)
        # Only the files the engine loads become paths: a name the launcher leaves alone
        # (a README, a figure) is not checked, whatever it holds.
        siblings = {s.rfilename: s for s in info.siblings}
        wanted = _wanted(siblings)
        if "config.json" not in wanted:
            raise WeightsError(
                f"{self.where} (commit {commit}) has no config.json, so it is "
                "not a checkpoint. Check MODEL and MODEL_REVISION."
            )
        if not any(name.endswith(".safetensors") for name in wanted):
            raise WeightsError(
                f"{self.where} has no *.safetensors weights; the launcher "
                "fetches only safetensors. Set DOWNLOAD=0 to let the engine "
                "fetch it itself."
            )
        return commit, [RemoteFile.from_sibling(siblings[name]) for name in wanted]

    def cannot_read(self, what: str) -> WeightsError:
        """The refusal of a model listing that lacks ``what`` (or holds it as another type)."""
        return WeightsError(
            f"cannot look up {self.where}: {self.hub_at} answered with a model listing the "
            f"launcher cannot read: {what}. The Hub's own API never answers so; check that "
            "HF_ENDPOINT is the Hub, or a mirror that passes its answers on unchanged"
            f"{self.missing_here}."
        )


def default_stall_s() -> int:
    """``DOWNLOAD_STALL_S``'s default (``entrypoint.settings``), in seconds: a transfer with
    no new byte for a minute is stalled, not slow."""
    from .settings import BY_NAME

    return int(BY_NAME["DOWNLOAD_STALL_S"].default)


def fetch(
    located: Located,
    env: Mapping[str, str],
    log: Callable[[str], None] = log,
    stall_s: float | None = None,
    checked: set[str] | None = None,
) -> str:
    """Download the files of ``located`` that the cache lacks; return the snapshot path.

    1. Asks the Hub for the file list with sizes and hashes
       (``HfApi.model_info(files_metadata=True)``), each request bounded by ``stall_s``,
       ``DOWNLOAD_ATTEMPTS`` tries for a Hub that does not answer.
    2. Takes the cache's download lease (``entrypoint.lease``): when another node sharing
       the cache downloads, waits for it (logging its progress), then finds the files
       there.
    3. Refuses when the missing bytes (less what partial files already hold) exceed the
       free space under the cache.
    4. Fetches the missing files (``entrypoint.transfer``): resumable, hashed, a stall
       bound on every read; then links the snapshot and the ref.

    SIGINT and SIGTERM end the process at once meanwhile (``_ExitOnSignals``).

    Args:
        located: from ``locate``, with ``needs_download``.
        env: the environment (``HF_TOKEN``, ``HF_ENDPOINT``).
        log: where progress lines go (stderr by default).
        stall_s: seconds without a byte before a request or transfer is given up
            (``DOWNLOAD_STALL_S``; its default when ``None``).
        checked: when given, gets the names of the files this call fetched, each checked
            against the Hub's hash as it arrived.

    Raises:
        WeightsError: the Hub refuses or cannot be reached, the revision or repository does
            not exist or is not a checkpoint, the Hub's answer names a path outside the
            cache or cannot be read (``HubRepo.files``), the disk is too small or not
            writable, or a file stalled or failed ``DOWNLOAD_ATTEMPTS`` times in a row.
        ConfigError: ``HF_ENDPOINT`` is not a URL; the stored Hub token cannot be sent
            (``check_stored_token``).
    """
    import threading

    _hub()
    from huggingface_hub import get_session, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import (  # type: ignore[attr-defined]
        build_hf_headers,
        hf_raise_for_status,
    )
    from huggingface_hub.utils import httpx as hub_httpx  # type: ignore[attr-defined]

    from .lease import Lease, LeaseLost, lease_path
    from .transfer import (
        DOWNLOAD_ATTEMPTS,
        GaveUp,
        LocalWriteError,
        Refused,
        Source,
        TransferError,
        bytes_still_needed,
        fetch_all,
        link,
        pointer_path,
        remove_leftovers,
        write_ref,
    )

    repo, revision, cache = located.repo_id, located.revision, located.cache
    if repo is None or revision is None or cache is None:
        raise TypeError(f"fetch() takes a repo id's Located, not {located.model!r}'s")
    stall_s = stall_s or default_stall_s()
    missing_here = f"; missing here: {_names(located.missing)}" if located.missing else ""
    hub = HubRepo(repo, revision, env, stall_s, missing_here)
    api, endpoint, token, where = hub.api, hub.endpoint, hub.token, hub.where
    refuse, check_path = hub.refuse, hub.check_path
    commit, remotes = hub.files(log)
    wanted = [remote.name for remote in remotes]
    folder_name = repo_folder_name(repo_id=repo, repo_type="model")
    folder = os.path.join(cache, folder_name)
    snapshot = os.path.join(folder, "snapshots", commit)
    total = sum(remote.size for remote in remotes)

    def unwritable(error: OSError, path: str) -> WeightsError:
        import errno

        if error.errno == errno.ENOSPC:
            return WeightsError(
                f"the disk under {cache} filled up while fetching {where}. Free space "
                "there; the bytes already fetched are kept, and the next start resumes them."
            )
        return WeightsError(
            f"cannot write the checkpoint into the Hugging Face cache {cache}: {path}: "
            f"{error.strerror or error}. Mount a writable volume at HF_HOME (or HF_HUB_CACHE), "
            "or fill that cache elsewhere and set HF_HUB_OFFLINE=1."
        )

    waiting = _Progress(folder, total, log, prefix="shared cache", from_zero=True)
    lease = Lease(
        lease_path(cache, folder_name),
        stale_s=stall_s,
        no_progress_s=(2 * DOWNLOAD_ATTEMPTS + 1) * stall_s,
        log=log,
        progress=lambda: (waiting._on_disk(), waiting.sample()[1]),
    )
    with _ExitOnSignals(lambda: lease.release(join=False), log):
        while True:
            try:
                lease.acquire()
            except OSError as error:
                raise unwritable(error, lease.path) from None
            try:
                missing = [
                    r for r in remotes if not os.path.isfile(pointer_path(folder, commit, r.name))
                ]
                if missing:
                    need = bytes_still_needed(folder, missing)
                    free = _free_bytes(cache)
                    kept = sum(r.size for r in missing) - need
                    already = f"; {format_gb(kept)} of them are already on disk" if kept else ""
                    if need > free:
                        raise WeightsError(
                            f"not enough disk space for {where}: the {len(missing)} missing "
                            f"files need {format_gb(need)}, and {format_gb(free)} are free "
                            f"under {cache}{already}. Free space there, or mount a larger "
                            "volume at HF_HOME (the FP8 checkpoint is about 560 GB, BF16 "
                            "about 1.1 TB)."
                        )
                    log(
                        f"weights: fetching {len(missing)} of {len(wanted)} files of {where} "
                        f"(commit {commit}), {need / GB:.2f} GB, from {api.endpoint} into "
                        f"{cache}; {free / GB:.2f} GB free{already}"
                    )
                    progress = _Progress(folder, need, log)
                    source = Source(
                        get_session(),
                        hub_httpx,
                        lambda name: hf_hub_url(repo, name, revision=commit, endpoint=endpoint),
                        build_hf_headers(token=token or False),
                        hf_raise_for_status,
                        HfHubHTTPError,
                        stall_s,
                    )
                    write_ref(folder, revision, commit)

                    def in_place(remote: RemoteFile, verified: bool) -> None:
                        link(folder, commit, remote)
                        if verified and checked is not None:
                            checked.add(remote.name)

                    with progress:
                        fetch_all(
                            source,
                            folder,
                            missing,
                            threading.Event(),
                            log,
                            should_stop=lambda: (
                                LeaseLost(lease.path) if lease.lost.is_set() else None
                            ),
                            finished=in_place,
                        )
                    log(f"{progress.line()}; done")
                for remote in remotes:
                    link(folder, commit, remote)
                write_ref(folder, revision, commit)
                remove_leftovers(folder, [r.etag for r in remotes], older_than_s=stall_s)
            except LeaseLost:
                log(
                    "weights: another node took over the download of this shared cache; "
                    "waiting for it"
                )
                continue
            except GaveUp as error:
                on_disk = _blobs_on_disk(os.path.join(folder, "blobs"))
                if error.stalled:
                    raise WeightsError(
                        f"cannot fetch {where}: {error.remote.name} stalled: no byte for "
                        f"{stall_s:g} s, {DOWNLOAD_ATTEMPTS} times in a row "
                        f"({error.last}). The Hub or the network path to {api.endpoint} "
                        "stopped sending: check HF_ENDPOINT and any proxy or firewall on the "
                        "way; on a slow link, raise DOWNLOAD_STALL_S. A restart resumes from "
                        f"the {format_gb(on_disk)} in the cache{missing_here}."
                    ) from None
                raise WeightsError(
                    f"cannot fetch {where}: {error.last}, {DOWNLOAD_ATTEMPTS} times in a row. "
                    f"{check_path}. A restart resumes from the {format_gb(on_disk)} in the "
                    f"cache{missing_here}."
                ) from None
            except Refused as error:
                raise refuse(error.error, f"fetch {error.args[0].split(':', 1)[0]} of") from None
            except LocalWriteError as error:
                raise unwritable(error.error, error.path) from None
            except TransferError as error:  # Aborted without a cause: a bug
                raise WeightsError(f"cannot fetch {where}: {error}") from None
            finally:
                lease.release()
            break
    if not os.path.isfile(os.path.join(snapshot, "config.json")):
        raise WeightsError(f"{where} was fetched to {snapshot}, but config.json is not there.")
    return snapshot


def prepare(
    plan: Plan, values: Mapping[str, Any], env: Mapping[str, str], located: Located | None = None
) -> Located:
    """``locate``, then ``fetch`` if needed; return where the checkpoint is on this host.

    ``Located.plan_changes`` gives what the plan becomes (the local path).
    """
    located = located or locate(plan, values, env)
    if located.needs_download:
        located.path = fetch(located, env, stall_s=values.get("DOWNLOAD_STALL_S"))
    return located


# --- the dry run ------------------------------------------------------------------------


def describe(
    plan: Plan, values: Mapping[str, Any], env: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """What the launch would do with the weights, for the dry run. Touches nothing.

    Raises:
        ConfigError: ``HF_ENDPOINT`` is not a URL, for a repo id with ``DOWNLOAD`` on (the
            launch refuses it then too, in ``locate_model``); checked without importing
            huggingface_hub.
    """
    rows = _describe_checkpoint(plan, values, env)
    seed = (env.get("LONGCAT_HF_SEED") or "").strip()
    if seed:
        rows.append(
            (
                "image's cache files",
                f"{seed}, linked into the cache",
                "LONGCAT_HF_SEED: the models--* it lacks",
            )
        )
    return rows


def _describe_checkpoint(
    plan: Plan, values: Mapping[str, Any], env: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    if not values.get("DOWNLOAD", True):
        return [("weights", "MODEL goes to the engine as given", "DOWNLOAD=0")]
    revision = values.get("MODEL_REVISION")
    if is_local(plan.model):
        what = (
            "its snapshot for " + (f"MODEL_REVISION={revision}" if revision else "refs/main")
            if os.path.basename(os.path.abspath(plan.model)).startswith(CACHE_PREFIX)
            else "used as given"
        )
        return [("weights", f"{plan.model}: local, must hold config.json", what)]
    # The check the launch makes in locate_model, so the dry run refuses what it would.
    endpoint = hub_endpoint(env)
    source = (
        "cache only (HF_HUB_OFFLINE)"
        if hub_offline(env)
        else f"fetched from {endpoint or 'the Hub'} unless complete in the cache"
    )
    return [
        ("weights", f"{plan.model}@{revision or DEFAULT_REVISION}", source),
        ("  cache", hub_cache(env), "HF_HUB_CACHE, else HF_HOME/hub"),
        ("  files", " ".join(ALLOW_PATTERNS), "what the engine loads"),
        (
            "  stall bound",
            f"{values.get('DOWNLOAD_STALL_S') or default_stall_s()} s without a byte, 3 times",
            "DOWNLOAD_STALL_S: then exit 4",
        ),
        ("  shared cache", "one node downloads, the others wait", "a lease file in the cache"),
        ("  engine gets", "the local snapshot", f"served as {plan.served_model_name}"),
    ]
