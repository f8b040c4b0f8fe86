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
  asks the Hub for the file list and sizes, compares the missing bytes with the free space
  under the cache, and downloads the missing files with ``huggingface_hub.snapshot_download``,
  logging progress. Either way the engine gets the local snapshot path and the repo id
  becomes ``--served-model-name``, so clients still see the repo id; the MTP draft model
  (``Plan.draft_model``) follows ``plan.model``.

Only the files the engine loads are fetched (``ALLOW_PATTERNS``). The transfer is resumable:
an interrupted file is resumed with an HTTP range request (by huggingface_hub within its call
in recent releases; from the partial file by the launcher's next attempt, ``DOWNLOAD_ATTEMPTS``,
in releases that keep partial files, such as 0.34), and files already fetched are never
fetched again, by this start or a later one. ``HF_TOKEN`` (never printed),
``HF_HOME``/``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` are honoured as huggingface_hub defines them;
``MODEL_REVISION`` pins a branch, tag or commit. ``DOWNLOAD=0`` skips this module entirely.

Failures raise ``WeightsError`` (exit status 4): a local path that is not a checkpoint, a
cache folder without a usable snapshot, files missing in offline mode (named), a repository
or revision the Hub does not have or will not give with this token, too little disk space
(both numbers, in GB and bytes), or a failed transfer.

``huggingface_hub`` is imported only when ``MODEL`` is a repo id and this step runs: the
launcher runs on every container start, and a local ``MODEL`` or ``DOWNLOAD=0`` must stay
light.
"""

from __future__ import annotations

import os

from .errors import WeightsError
from .output import format_gb, log
from .values import CACHE_FOLDER_PREFIX, GB, is_local_model, repo_id_of_cache_folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import ModuleType, TracebackType
    from typing import Any

    from .plan import Plan

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
# snapshot_download calls per start: a transfer cut by the network is resumed at once (files
# already fetched are kept; releases that keep partial files resume those with a range
# request). Refusals (unknown repository or revision, no access, HTTP 4xx) are not retried.
DOWNLOAD_ATTEMPTS = 3
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub.constants.ENV_VARS_TRUE_VALUES


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
        env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
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

    def __init__(self, model: str, path: str | None = None,
                 repo_id: str | None = None, revision: str | None = None,
                 cache: str | None = None, missing: list[str] | None = None):
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
    """The snapshot directory of a cache repository folder (``models--org--name``)."""
    snapshots_dir = os.path.join(folder, "snapshots")
    try:
        snapshots = sorted(name for name in os.listdir(snapshots_dir)
                           if os.path.isdir(os.path.join(snapshots_dir, name)))
    except OSError:
        snapshots = []
    wanted = revision or DEFAULT_REVISION
    if wanted in snapshots:
        return os.path.join(snapshots_dir, wanted)
    ref = os.path.join(folder, "refs", *wanted.split("/"))
    try:
        with open(ref) as f:
            commit = f.read().strip()
    except OSError:
        commit = None
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
        "MODEL_REVISION to one of those, or MODEL to a snapshot directory.")


def _locate_local(model: str, revision: str | None) -> Located:
    path = os.path.abspath(model)
    if not os.path.isdir(path):
        raise WeightsError(
            f"MODEL={model} is not a directory on this host. Mount the checkpoint there "
            f"(docker run -v HOST_DIR:{path}), or set MODEL to a Hugging Face repo id.")
    cache_folder = repo_id_of_cache_folder(path) is not None
    if cache_folder:
        path = _snapshot_of_cache_folder(path, revision)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise WeightsError(
            f"MODEL={model}: {path} holds no config.json, so it is not a checkpoint. Point "
            "MODEL at the directory with config.json and the *.safetensors files.")
    return Located(model, path=path if cache_folder else model)


# --- the Hugging Face cache -------------------------------------------------------------

def _hub() -> ModuleType:
    """``huggingface_hub``, imported now; a clear refusal when it is not installed."""
    try:
        import huggingface_hub
    except ImportError:
        raise WeightsError("MODEL is a Hugging Face repo id, but the huggingface_hub package "
                           "is not installed here (the longcat-deploy images ship it). Install "
                           "huggingface_hub, or set DOWNLOAD=0 to leave MODEL to the engine.") \
            from None
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
        WeightsError: a local ``MODEL`` that is not a checkpoint; files missing while
            ``HF_HUB_OFFLINE`` is on.
    """
    revision = values.get("MODEL_REVISION")
    if is_local(plan.model):
        return _locate_local(plan.model, revision)
    revision = revision or DEFAULT_REVISION
    cache = hub_cache(env)
    try:
        snapshot, missing = cached_snapshot(plan.model, revision, cache)
    except ValueError as error:  # huggingface_hub's HFValidationError: a name it refuses
        raise WeightsError(f"MODEL={plan.model} (MODEL_REVISION={revision}) is refused by "
                           f"huggingface_hub: {error}") from None
    located = Located(plan.model, repo_id=plan.model,
                      revision=revision, cache=cache, missing=missing)
    if snapshot is not None and not missing:
        located.path = snapshot
        log(f"weights: {plan.model}@{revision} is complete in the cache, using {snapshot}")
    elif hub_offline(env):
        what = (f"these files are missing: {_names(missing)}" if missing
                else "nothing of it is cached")
        raise WeightsError(
            f"HF_HUB_OFFLINE is on and {plan.model}@{revision} is not complete in the cache "
            f"{cache}: {what}. Fill the cache (with network access, or by mounting a cache "
            "that holds the checkpoint at HF_HOME), or unset HF_HUB_OFFLINE.")
    return located


# --- the download -----------------------------------------------------------------------

def _free_bytes(directory: str) -> int:
    import shutil

    path = os.path.abspath(directory)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def _summary(error: Exception, token: str | None) -> str:
    """``Type: first line of the message``, with the token (if any) blanked out."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {text.replace(token, '***') if token else text}"


class _Progress:
    """Logs the bytes fetched so far every ``PROGRESS_EVERY_S``, from a background thread.

    It measures what the download wrote under the repository's ``blobs`` folder in the
    cache (finished and partial files alike), so it works with any huggingface_hub release
    and transfer backend, and prints plain lines that suit container logs.
    """

    def __init__(self, folder: str, total: int, log: Callable[[str], None]):
        import threading
        import time

        self.blobs = os.path.join(folder, "blobs")
        self.total, self.log = total, log
        self.clock = time.monotonic
        self.start = self.clock()
        self.base = self._on_disk()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="download-progress", daemon=True)

    def _on_disk(self) -> int:
        total = 0
        try:
            with os.scandir(self.blobs) as entries:
                for entry in entries:
                    try:  # a partial file may be renamed or removed meanwhile
                        total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass
        except OSError:  # no blobs folder yet
            pass
        return total

    def line(self) -> str:
        done = max(0, self._on_disk() - self.base)
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = done / elapsed
        text = f"download: {done / GB:.2f} of {self.total / GB:.2f} GB"
        if self.total:
            text += f" ({100 * min(done, self.total) / self.total:.0f}%)"
        text += f", {rate / 1e6:.1f} MB/s"
        if rate > 0 and self.total > done:
            text += f", about {(self.total - done) / rate / 60:.0f} min left"
        return text

    def _run(self) -> None:
        while not self.stop.wait(PROGRESS_EVERY_S):
            self.log(self.line())

    def __enter__(self) -> _Progress:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join()


def fetch(located: Located, env: Mapping[str, str],
          log: Callable[[str], None] = log) -> str:
    """Download the files of ``located`` that the cache lacks; return the snapshot path.

    Asks the Hub for the file list with sizes (``HfApi.model_info(files_metadata=True)``),
    refuses when the missing files need more than the free space under the cache, then
    downloads them with ``snapshot_download`` (``ALLOW_PATTERNS``), logging progress.

    Args:
        located: from ``locate``, with ``needs_download``.
        env: the environment (``HF_TOKEN``, ``HF_ENDPOINT``).
        log: where progress lines go (stderr by default).

    Raises:
        WeightsError: the Hub refuses or cannot be reached, the revision or repository does
            not exist or is not a checkpoint, the disk is too small, or the transfer fails.
    """
    _hub()
    from huggingface_hub import HfApi, snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.file_download import repo_folder_name

    repo, revision, cache = located.repo_id, located.revision, located.cache
    if repo is None or revision is None or cache is None:
        raise TypeError(f"fetch() takes a repo id's Located, not {located.model!r}'s")
    token = env.get("HF_TOKEN") or None
    api = HfApi(endpoint=env.get("HF_ENDPOINT") or None, token=token)
    where = f"{repo}@{revision}"
    missing_here = (f"; missing here: {_names(located.missing)}" if located.missing
                    else "")

    def refuse(error: Exception, doing: str) -> WeightsError:
        if isinstance(error, GatedRepoError):
            why = (f"{repo} is gated: accept its terms on its Hub page with your account, "
                   "then set HF_TOKEN to a token of that account")
        elif isinstance(error, RepositoryNotFoundError):
            why = (f"{api.endpoint} has no repository {repo}, or it is private and HF_TOKEN "
                   f"{'lacks access to it' if token else 'is not set'}. Check MODEL and HF_TOKEN")
        elif isinstance(error, RevisionNotFoundError):
            why = (f"{repo} has no revision {revision!r}. Set MODEL_REVISION to a branch, tag "
                   "or commit of it")
        else:
            why = (f"{_summary(error, token)}. Check the network path to "
                   f"{api.endpoint} (proxy, firewall), or fill the cache at HF_HOME and set "
                   "HF_HUB_OFFLINE=1")
        return WeightsError(f"cannot {doing} {where}: {why}{missing_here}.")

    try:
        info = api.model_info(repo, revision=revision, files_metadata=True)
    except Exception as error:
        raise refuse(error, "look up") from None
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    wanted = _wanted(siblings)
    if "config.json" not in wanted:
        raise WeightsError(f"{where} (commit {info.sha}) has no config.json, so it is not a "
                           "checkpoint. Check MODEL and MODEL_REVISION.")
    if not any(name.endswith(".safetensors") for name in wanted):
        raise WeightsError(f"{where} has no *.safetensors weights; the launcher fetches only "
                           "safetensors. Set DOWNLOAD=0 to let the engine fetch it itself.")
    missing = [name for name in wanted if not isinstance(
        try_to_load_from_cache(repo, name, cache_dir=cache, revision=info.sha), str)]
    need = sum(siblings[name].size or 0 for name in missing)
    free = _free_bytes(cache)
    if need > free:
        raise WeightsError(
            f"not enough disk space for {where}: the {len(missing)} missing files need "
            f"{format_gb(need)}, and {format_gb(free)} are free under {cache}. Free space "
            "there, or mount "
            "a larger volume at HF_HOME (the FP8 checkpoint is about 560 GB, BF16 about 1.1 TB).")
    log(f"weights: fetching {len(missing)} of {len(wanted)} files of {where} (commit "
        f"{info.sha}), {need / GB:.2f} GB, from {api.endpoint} into {cache}; "
        f"{free / GB:.2f} GB free")
    progress = _Progress(os.path.join(cache, repo_folder_name(repo_id=repo, repo_type="model")),
                         need, log)

    def final(error: Exception) -> bool:
        if isinstance(error, (RepositoryNotFoundError, RevisionNotFoundError, ValueError)):
            return True
        status = getattr(getattr(error, "response", None), "status_code", None)
        return isinstance(error, HfHubHTTPError) and status is not None \
            and 400 <= status < 500 and status not in (408, 429)

    with progress:
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                path = snapshot_download(repo, revision=revision, cache_dir=cache,
                                         allow_patterns=list(ALLOW_PATTERNS), token=token,
                                         endpoint=env.get("HF_ENDPOINT") or None)
                break
            except Exception as error:
                if isinstance(error, OSError) and error.errno == 28:  # ENOSPC
                    raise WeightsError(
                        f"the disk under {cache} filled up while fetching {where} "
                        f"({format_gb(need)} were needed, {format_gb(free)} free at the "
                        "start). Free "
                        "space there; the files already fetched are kept.") from None
                if attempt == DOWNLOAD_ATTEMPTS or final(error):
                    raise refuse(error, "fetch") from None
                log(f"weights: the transfer was interrupted ({_summary(error, token)}); "
                    f"resuming, attempt {attempt + 1} of {DOWNLOAD_ATTEMPTS}")
    log(f"{progress.line()}; done: {path}")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise WeightsError(f"{where} was fetched to {path}, but config.json is not there.")
    return path


def prepare(plan: Plan, values: Mapping[str, Any], env: Mapping[str, str],
            located: Located | None = None) -> Located:
    """``locate``, then ``fetch`` if needed; return where the checkpoint is on this host.

    ``Located.plan_changes`` gives what the plan becomes (the local path).
    """
    located = located or locate(plan, values, env)
    if located.needs_download:
        located.path = fetch(located, env)
    return located


# --- the dry run ------------------------------------------------------------------------

def describe(plan: Plan, values: Mapping[str, Any],
             env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """What the launch would do with the weights, for the dry run. Touches nothing."""
    if not values.get("DOWNLOAD", True):
        return [("weights", "MODEL goes to the engine as given", "DOWNLOAD=0")]
    revision = values.get("MODEL_REVISION")
    if is_local(plan.model):
        what = ("its snapshot for " + (f"MODEL_REVISION={revision}" if revision else "refs/main")
                if os.path.basename(os.path.abspath(plan.model)).startswith(CACHE_PREFIX)
                else "used as given")
        return [("weights", f"{plan.model}: local, must hold config.json", what)]
    source = "cache only (HF_HUB_OFFLINE)" if hub_offline(env) else \
        f"fetched from {env.get('HF_ENDPOINT') or 'the Hub'} unless complete in the cache"
    return [
        ("weights", f"{plan.model}@{revision or DEFAULT_REVISION}", source),
        ("  cache", hub_cache(env), "HF_HUB_CACHE, else HF_HOME/hub"),
        ("  files", " ".join(ALLOW_PATTERNS), "what the engine loads"),
        ("  engine gets", "the local snapshot", f"served as {plan.served_model_name}"),
    ]
