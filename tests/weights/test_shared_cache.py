"""Several launchers on one cache (nodes sharing a volume) download each file once; on
separate caches each downloads everything. File locks are made no-ops in every launcher
(``tests/fakes/noflock_site``), as on a shared filesystem that ignores them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from entrypoint.errors import WeightsError
from entrypoint.lease import Lease, lease_path
from tests.fakes.hub import sha256_hex
from tests.machine import require_root
from tests.weights.support import (
    CHECKPOINT,
    REPO_ROOT,
    Running,
    engine_record,
    error_lines,
    launch,
    launcher_env,
    partial_files,
    partial_size,
    snapshot,
    wait_until,
)

SHARD_1 = "model-00001-of-00002.safetensors"
AT = 11 * 2**20
NOFLOCK = Path(__file__).resolve().parents[1] / "fakes" / "noflock_site"
STALL_S = 2


def node_env(tmp_path: Path, node: str, hub_url: str, hf_home: Path, **extra) -> dict:
    """One node's launcher: its own HOME and engine record, the given cache, no flock."""
    env = launcher_env(tmp_path / node, hub_url, HF_HOME=hf_home, **extra)
    env["PYTHONPATH"] = str(NOFLOCK)
    return env


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` (links followed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_flock_is_a_no_op_in_the_launchers():
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import fcntl, os; fcntl.flock(0, fcntl.LOCK_EX); "
            "print(os.environ.get('NOFLOCK_ACTIVE'))",
        ],
        env={"PYTHONPATH": str(NOFLOCK), "PATH": os.environ["PATH"]},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "1"


def start_two(hub, tmp_path, python, cache_a: Path, cache_b: Path, prefix_a=(), **extra):
    """Node a starts and is held mid-transfer; node b starts; returns both and the release."""
    reached, release = threading.Event(), threading.Event()
    hub.pause_at[SHARD_1] = (AT, reached, release)
    a = Running(node_env(tmp_path, "a", hub.url, cache_a, **extra), python=python, prefix=prefix_a)
    assert reached.wait(60), a.stderr
    b = Running(node_env(tmp_path, "b", hub.url, cache_b, **extra), python=python)
    return a, b, release


def test_two_nodes_on_one_cache_download_each_file_once(hub, repo, tmp_path, launcher_python):
    cache = tmp_path / "shared-hf"
    a, b, release = start_two(hub, tmp_path, launcher_python, cache, cache)
    try:
        assert wait_until(lambda: "weights: waiting for " in b.stderr, 60), b.stderr
        assert "which is downloading into this shared cache" in b.stderr
    finally:
        release.set()
    assert a.wait() == 0, a.stderr
    assert b.wait() == 0, b.stderr
    for name in repo.commits[repo.refs["main"]]:
        assert len(hub.gets(name)) == (
            0
            if name in {"README.md", "figures/benchmark.png", "pytorch_model.bin", ".gitattributes"}
            else 1
        ), name
    local = snapshot(cache, CHECKPOINT, repo.refs["main"])
    argv_a = engine_record(node_env(tmp_path, "a", hub.url, cache))["argv"]
    argv_b = engine_record(node_env(tmp_path, "b", hub.url, cache))["argv"]
    assert argv_a[2] == argv_b[2] == str(local)
    assert "fetching" not in b.stderr, "the waiting node fetched nothing itself"
    assert partial_files(cache) == []
    assert not list(cache.rglob("*.lease"))


def test_two_nodes_on_separate_caches_each_download_everything(
    hub, repo, tmp_path, launcher_python
):
    a, b, release = start_two(hub, tmp_path, launcher_python, tmp_path / "hf-a", tmp_path / "hf-b")
    try:
        # b goes its own way while a is held: it fetches everything but the held shard.
        assert wait_until(lambda: len(hub.gets("config.json")) == 2, 60), b.stderr
    finally:
        release.set()
    assert a.wait() == 0, a.stderr
    assert b.wait() == 0, b.stderr
    assert "waiting for" not in a.stderr + b.stderr
    loaded = set(repo.commits[repo.refs["main"]]) - {
        "README.md",
        "figures/benchmark.png",
        "pytorch_model.bin",
        ".gitattributes",
    }
    for name in loaded:
        assert len(hub.gets(name)) == 2, name
    sha = repo.refs["main"]
    assert tree_digest(snapshot(tmp_path / "hf-a", CHECKPOINT, sha)) == tree_digest(
        snapshot(tmp_path / "hf-b", CHECKPOINT, sha)
    )


# Node a in this PID namespace (b sees at once that it is gone), or in its own, as on
# another node or in another container (b sees its heartbeat stop).
PLACES = [
    pytest.param((), "is not running any more", id="same-namespace"),
    pytest.param(
        ("unshare", "--pid", "--fork", "--kill-child"),
        "stopped renewing its lease",
        id="other-namespace",
        marks=pytest.mark.root,
    ),
]


@pytest.mark.parametrize("prefix,why", PLACES)
def test_a_waiting_node_takes_over_from_one_that_died_and_resumes_its_bytes(
    hub, repo, tmp_path, launcher_python, prefix, why
):
    if prefix:
        require_root("a PID namespace (unshare --pid)")
    cache = tmp_path / "shared-hf"
    a, b, release = start_two(
        hub, tmp_path, launcher_python, cache, cache, prefix_a=prefix, DOWNLOAD_STALL_S=STALL_S
    )
    try:
        assert wait_until(lambda: "weights: waiting for " in b.stderr, 60), b.stderr
        assert wait_until(
            lambda: partial_size(cache, sha256_hex(repo.commits[repo.refs["main"]][SHARD_1])) >= AT
        ), a.stderr
        a.kill()  # its node is gone: no release of the lease, no more heartbeats
        killed = time.monotonic()
        del hub.pause_at[SHARD_1]
    finally:
        release.set()
    assert b.wait() == 0, b.stderr
    took = time.monotonic() - killed
    assert why in b.stderr and "taking the download over" in b.stderr, b.stderr
    assert took < 3 * STALL_S + 10, f"took over {took:.1f} s after the kill"
    gets = hub.gets(SHARD_1)
    assert len(gets) == 2 and gets[1].range == f"bytes={AT}-", gets
    sha = repo.refs["main"]
    local = snapshot(cache, CHECKPOINT, sha) / SHARD_1
    assert (
        hashlib.sha256(local.read_bytes()).digest()
        == hashlib.sha256(repo.commits[sha][SHARD_1]).digest()
    )
    assert partial_files(cache) == []


# Bounds for a launcher that meets something else than a file where its lease belongs: it
# refuses at once (in under REFUSED_WITHIN_S, the interpreter's start and the Hub's listing
# included), where it used to spin or block without a word.
REFUSED_WITHIN_S = 20
HUNG_AFTER_S = 40


def plant(path: Path, kind: str) -> None:
    """Make ``path`` a ``kind``: "directory", "fifo", "a link to /dev/zero", "a dangling link"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "directory":
        path.mkdir()
        (path / "something").write_text("left here")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "a link to /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(path.parent / "absent")


@pytest.mark.parametrize(
    "kind,said",
    [
        ("directory", "a directory"),
        ("fifo", "a FIFO (named pipe)"),
        ("a link to /dev/zero", "a symbolic link"),
        ("a dangling link", "a symbolic link"),
    ],
)
def test_a_lease_that_is_not_a_file_is_refused_at_once(hub, repo, tmp_path, kind, said):
    """A directory, FIFO or link where the lease file belongs: the prefetch made it spin (a
    directory: open() fails, read as "released", retried without a pause) or block (a FIFO:
    open() waits for a writer), printing nothing."""
    hf = tmp_path / "hf"
    lease = hf / "hub" / ".locks" / f"models--{CHECKPOINT.replace('/', '--')}"
    lease = lease / "longcat-deploy.download.lease"
    plant(lease, kind)
    started = time.monotonic()
    result = launch(launcher_env(tmp_path, hub.url), ["prefetch"], timeout=HUNG_AFTER_S)
    took = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert error_lines(result.stderr) == [
        f"the download lease {lease} is {said}, not the file the launcher keeps "
        "there while a node downloads into this cache; no launcher can take the lease "
        f"while it is there. Remove it (rm {'-r ' if kind == 'directory' else ''}{lease}), "
        "then start again."
    ], result.stderr
    assert "Traceback" not in result.stderr
    assert took < REFUSED_WITHIN_S, f"refused after {took:.1f} s"
    assert not [r for r in hub.requests if "/resolve/" in r.path], "nothing was fetched"
    assert lease.is_symlink() or lease.exists(), "what was there is left for the user"


def test_a_lease_folder_that_is_not_a_folder_is_refused_with_its_path(tmp_path):
    """A FIFO where the lease's folder belongs: named, not reported as an unwritable cache
    ("File exists", with advice to mount a writable volume)."""
    folder = tmp_path / "hub" / ".locks" / f"models--{CHECKPOINT.replace('/', '--')}"
    folder.parent.mkdir(parents=True)
    os.mkfifo(folder)
    lease = Lease(lease_path(str(tmp_path / "hub"), folder.name), 60, 60, log=lambda line: None)
    with pytest.raises(WeightsError) as refused:
        lease.acquire()
    assert refused.value.message() == (
        f"{folder}, the folder of the download lease {lease.path}, is a FIFO (named pipe), "
        "not a folder; no launcher can take the lease while it is there. Remove it "
        f"(rm {folder}), then start again."
    )
