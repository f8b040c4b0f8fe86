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

from tests.fakes.hub import sha256_hex
from tests.machine import require_root
from tests.weights.support import (
    CHECKPOINT,
    REPO_ROOT,
    Running,
    engine_record,
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
