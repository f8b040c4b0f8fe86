"""``python -m entrypoint prefetch [--verify]``: fill the cache with the checkpoint, then exit.

It fetches the checkpoint the same configuration would serve (``MODEL``, else the one
``VARIANT`` and ``PRECISION`` select, at ``MODEL_REVISION``), into the same cache (``HF_HOME`` or
``HF_HUB_CACHE``), the same files, by the same code as a launch (``entrypoint.weights``):
resumable, verified as it arrives, bounded by ``DOWNLOAD_STALL_S``, once per shared cache.
No GPU, no engine and no multi-node setting is needed: a Kubernetes Job, an sbatch step or
a compose service runs it before the deployment, which then finds the cache complete and
starts without the Hub.

``--verify`` then checks every file of the snapshot against the Hub's metadata: the size,
and the sha256 the Hub publishes for LFS files (the git blob id for the others). Files this
run fetched were checked as they arrived and are not read again.

Exit statuses: 0 the checkpoint is complete (and verified); 2 bad configuration (a
``--verify`` that cannot compare with the Hub: a local ``MODEL``, ``HF_HUB_OFFLINE``);
4 it could not be fetched, or files differ from the Hub's metadata (each named); 130 or 143
interrupted (the bytes fetched so far are kept).
"""

from __future__ import annotations

import os

from .errors import ConfigError, WeightsError
from .output import format_gb, log, say
from .units import GB

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from .transfer import RemoteFile

# How often --verify logs how far it got.
VERIFY_LOG_EVERY_S = 15.0
# Files hashed at once: hashlib releases the GIL on large buffers, so threads use the cores.
VERIFY_PARALLEL = 4
READ_BYTES = 8 * 2**20


def checkpoint_of(values: Mapping[str, object]) -> str:
    """The ``MODEL`` a launch with these settings serves: ``MODEL``, else the checkpoint
    ``VARIANT`` and ``PRECISION`` select (as ``entrypoint.plan.resolve_plan`` picks it)."""
    from .settings import CHECKPOINTS, THINKING_CHECKPOINTS

    model = values.get("MODEL")
    if model:
        return str(model)
    table = THINKING_CHECKPOINTS if values.get("VARIANT") == "thinking" else CHECKPOINTS
    return table[str(values["PRECISION"])]


def run_prefetch(env: Mapping[str, str], verify: bool) -> int:
    """Fetch (and with ``verify``, check) the checkpoint this configuration serves.

    Args:
        env: the environment, read as a launch reads it (``entrypoint.settings``).
        verify: check every file against the Hub's metadata afterwards.

    Returns:
        0 when the checkpoint is complete (and verified).

    Raises:
        ConfigError: a bad variable, or ``--verify`` without a Hub to compare with.
        WeightsError: the checkpoint cannot be fetched, or files differ (exit 4).
    """
    from .plan import model_revision
    from .settings import ENGINES, load_settings
    from .weights import hub_offline, is_local, locate_model

    # Which engine serves it does not change the checkpoint; none need be installed here.
    settings = load_settings(env, installed=lambda: [ENGINES[0]])
    values = settings.values
    model = checkpoint_of(values)
    revision = values["MODEL_REVISION"]
    model_revision(model, revision, download=True)  # refuses what a launch refuses
    if is_local(model):
        if verify:
            raise ConfigError(
                "MODEL",
                model,
                "a Hugging Face repo id, for prefetch --verify",
                "--verify compares the files with the Hub's metadata; a local "
                "directory has none to compare with.",
            )
        located = locate_model(model, revision, env)
        say(f"prefetch: MODEL={model} is a local checkpoint ({located.path}); nothing to fetch.")
        return 0
    if verify and hub_offline(env):
        raise ConfigError(
            "HF_HUB_OFFLINE",
            env.get("HF_HUB_OFFLINE"),
            "unset, for prefetch --verify",
            "--verify asks the Hub for each file's size and hash.",
        )
    located = locate_model(model, revision, env)
    checked: set[str] = set()
    if located.needs_download:
        from .weights import fetch

        located.path = fetch(located, env, stall_s=values["DOWNLOAD_STALL_S"], checked=checked)
    snapshot, repo_id = located.path, located.repo_id
    if snapshot is None or repo_id is None:
        raise TypeError(f"locate/fetch left {model!r} without a snapshot")  # a bug
    if verify:
        verify_snapshot(repo_id, snapshot, env, values["DOWNLOAD_STALL_S"], checked)
    say(
        f"prefetch: {model}@{located.revision} is complete in {located.cache} "
        f"({snapshot}){' and verified' if verify else ''}; start the deployment with the "
        "same HF_HOME."
    )
    return 0


def _digest(path: str, remote: RemoteFile) -> str:
    hasher = remote.hasher()
    with open(path, "rb") as f:
        while chunk := f.read(READ_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_snapshot(
    repo_id: str,
    snapshot: str,
    env: Mapping[str, str],
    stall_s: float,
    checked: Collection[str] = (),
    log: Callable[[str], None] = log,
) -> None:
    """Check each file of ``snapshot`` against the Hub's metadata for its commit.

    The commit is the snapshot folder's name. For each file the engine loads: present,
    the Hub's size, and the sha256 (LFS files) or the git blob id (others). Files named in
    ``checked`` were hashed as they were fetched and are only checked for presence and size.

    Raises:
        WeightsError: files are missing or differ, each named with its blob, and the fix.
    """
    import threading
    import time

    from .weights import HubRepo

    commit = os.path.basename(os.path.normpath(snapshot))
    _, remotes = HubRepo(repo_id, commit, env, stall_s).files(log)
    to_hash = [r for r in remotes if r.name not in checked]
    total = sum(r.size for r in to_hash)
    log(
        f"verify: {len(remotes)} files of {repo_id} (commit {commit}); hashing "
        f"{len(to_hash)} of them, {total / GB:.2f} GB"
        + (
            f" ({len(remotes) - len(to_hash)} were checked as they were fetched)"
            if len(to_hash) < len(remotes)
            else ""
        )
    )
    problems: dict[str, str] = {}
    lock = threading.Lock()
    done = [0]
    pending = list(to_hash)

    def check(remote: RemoteFile) -> str | None:
        path = os.path.join(snapshot, *remote.name.split("/"))
        try:
            size = os.stat(path).st_size
        except OSError:
            return "missing"
        if size != remote.size:
            return f"{size} bytes, the Hub lists {remote.size}"
        if remote.name in checked:
            return None
        kind, value = remote.expected()
        try:
            found = _digest(path, remote)
        except OSError as error:
            return f"cannot be read: {error.strerror or error}"
        return None if found == value else f"{kind} {found}, the Hub lists {value}"

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                remote = pending.pop()
            problem = check(remote)
            with lock:
                done[0] += remote.size
                if problem:
                    problems[remote.name] = problem

    for remote in remotes:  # presence and size of the files fetched just now
        if remote.name in checked and (problem := check(remote)):
            problems[remote.name] = problem
    workers = [
        threading.Thread(target=work, daemon=True, name=f"verify-{i}")
        for i in range(max(1, min(VERIFY_PARALLEL, len(to_hash))))
    ]
    for worker in workers:
        worker.start()
    started = last = time.monotonic()
    while any(worker.is_alive() for worker in workers):
        for worker in workers:
            worker.join(0.2)
        if time.monotonic() - last >= VERIFY_LOG_EVERY_S:
            last = time.monotonic()
            rate = done[0] / max(last - started, 1e-9)
            log(f"verify: {done[0] / GB:.2f} of {total / GB:.2f} GB hashed, {rate / 1e6:.0f} MB/s")
    if not problems:
        log(
            f"verify: all {len(remotes)} files match the Hub's sizes and hashes "
            f"({format_gb(sum(r.size for r in remotes))})"
        )
        return
    blobs = {
        r.name: os.path.realpath(os.path.join(snapshot, *r.name.split("/")))
        for r in remotes
        if r.name in problems
    }
    listed = "; ".join(f"{name}: {problems[name]} ({blobs[name]})" for name in sorted(problems))
    raise WeightsError(
        f"prefetch --verify: {len(problems)} of {len(remotes)} files of {repo_id} (commit "
        f"{commit}) do not match the Hub: {listed}. Delete those files (the paths in "
        "parentheses) and run prefetch again: it fetches them anew."
    )
