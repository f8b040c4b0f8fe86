"""Faults in the field, planted in the fake Hub: a stall, a Hub that never answers, a kill
during a transfer, a signal, a refusal, a cache that cannot be written. Each ends within
its bound with a message naming the cause and the fix, and a restart resumes from the
bytes on disk.

Time bounds are asserted loosely (the machine is shared and noisy): within 3x the bound.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time

import pytest

from entrypoint.transfer import DOWNLOAD_ATTEMPTS, RETRY_PAUSE_S
from tests.machine import require_root
from tests.weights.support import (
    CHECKPOINT,
    Running,
    blob_dir,
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
SHARD_2 = "model-00002-of-00002.safetensors"
STALL_S = 2
# The documented bound: DOWNLOAD_ATTEMPTS attempts, each ending after DOWNLOAD_STALL_S
# without a byte, with a pause between attempts.
BOUND_S = DOWNLOAD_ATTEMPTS * (STALL_S + RETRY_PAUSE_S)
# Starting the interpreter and importing huggingface_hub, on a busy machine.
START_S = 10
AT = 11 * 2**20  # past huggingface_hub's 10 MiB chunk, inside the 12 MiB shard


def shard_digest(repo, name=SHARD_1) -> str:
    return hashlib.sha256(repo.commits[repo.refs["main"]][name]).hexdigest()


def test_a_stalled_transfer_ends_within_the_bound_and_names_the_fix(
    hub, repo, tmp_path, launcher_python
):
    hub.stall_at[SHARD_1] = AT
    env = launcher_env(tmp_path, hub.url, DOWNLOAD_STALL_S=STALL_S)
    started = time.monotonic()
    result = launch(env, python=launcher_python)
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert elapsed < 3 * BOUND_S + START_S, f"{elapsed:.1f} s for a bound of {BOUND_S} s"
    message = result.stderr.strip().splitlines()[-1]
    assert (
        f"{SHARD_1} stalled: no byte for {STALL_S} s, {DOWNLOAD_ATTEMPTS} times in a row" in message
    )
    assert "check HF_ENDPOINT" in message and "raise DOWNLOAD_STALL_S" in message
    assert "A restart resumes" in message and "Traceback" not in result.stderr
    gets = hub.gets(SHARD_1)
    assert len(gets) == DOWNLOAD_ATTEMPTS
    assert gets[0].range is None
    assert all(g.range == f"bytes={AT}-" for g in gets[1:]), gets
    # The bytes that did arrive are kept for the next start, and it resumes from them.
    assert [p.stat().st_size for p in partial_files(tmp_path / "hf")] == [AT]
    del hub.stall_at[SHARD_1]
    seen = len(hub.gets(SHARD_1))
    again = launch(env, python=launcher_python)
    assert again.returncode == 0, again.stderr
    assert [g.range for g in hub.gets(SHARD_1)[seen:]] == [f"bytes={AT}-"]
    assert partial_files(tmp_path / "hf") == []
    local = snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"]) / SHARD_1
    assert hashlib.sha256(local.read_bytes()).hexdigest() == shard_digest(repo)


def test_a_hub_that_accepts_and_never_answers_ends_within_the_bound(
    hub, repo, tmp_path, launcher_python
):
    hub.silent = True
    env = launcher_env(tmp_path, hub.url, DOWNLOAD_STALL_S=STALL_S)
    started = time.monotonic()
    result = launch(env, timeout=3 * BOUND_S + START_S + 30, python=launcher_python)
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert elapsed < 3 * BOUND_S + START_S, f"{elapsed:.1f} s for a bound of {BOUND_S} s"
    assert (
        f"cannot look up {CHECKPOINT}@main: {hub.url} sent nothing for {STALL_S} s "
        f"(DOWNLOAD_STALL_S), {DOWNLOAD_ATTEMPTS} times" in result.stderr
    )
    assert "HF_ENDPOINT" in result.stderr and "Traceback" not in result.stderr
    # (huggingface_hub 2.x also asks /api/agent-harnesses once, with its own 3 s timeout.)
    assert len([r for r in hub.requests if r.path.startswith("/api/models/")]) == DOWNLOAD_ATTEMPTS


def start_paused(hub, tmp_path, python, **extra) -> tuple[Running, threading.Event]:
    """A launch whose transfer of SHARD_1 waits at AT bytes until the returned event is set,
    once those bytes are in the partial file."""
    reached, release = threading.Event(), threading.Event()
    hub.pause_at[SHARD_1] = (AT, reached, release)
    running = Running(launcher_env(tmp_path, hub.url, **extra), python=python)
    assert reached.wait(60), running.stderr
    assert wait_until(
        lambda: partial_size(tmp_path / "hf", shard_digest(hub.repos[CHECKPOINT])) >= AT
    ), running.stderr
    return running, release


def test_a_start_killed_during_a_transfer_is_resumed_by_the_next_one(
    hub, repo, tmp_path, launcher_python
):
    running, release = start_paused(hub, tmp_path, launcher_python)
    running.kill()
    release.set()
    assert len(partial_files(tmp_path / "hf")) == 1
    del hub.pause_at[SHARD_1]
    seen = {name: len(hub.gets(name)) for name in repo.commits[repo.refs["main"]]}
    env = launcher_env(tmp_path, hub.url)
    result = launch(env, python=launcher_python)
    assert result.returncode == 0, result.stderr
    assert [g.range for g in hub.gets(SHARD_1)[seen[SHARD_1] :]] == [f"bytes={AT}-"]
    assert "0.01 GB (11534336 bytes) of them are already on disk" in result.stderr
    refetched = [
        name
        for name, count in seen.items()
        if count and len(hub.gets(name)) > count and name != SHARD_1
    ]
    assert refetched == [], "files finished before the kill are not fetched again"
    assert partial_files(tmp_path / "hf") == [], "no partial file is left after success"
    local = snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"])
    assert engine_record(env)["argv"][2] == str(local)
    assert hashlib.sha256((local / SHARD_1).read_bytes()).hexdigest() == shard_digest(repo)


@pytest.mark.parametrize(
    "signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_during_a_transfer_ends_the_launcher_within_2_s(
    hub, repo, tmp_path, signum, status, launcher_python
):
    running, release = start_paused(hub, tmp_path, launcher_python)
    try:
        sent = time.monotonic()
        running.process.send_signal(signum)
        returncode = running.wait(30)
        elapsed = time.monotonic() - sent
    finally:
        release.set()
    assert returncode == status, running.stderr
    assert elapsed < 2, f"exited {elapsed:.2f} s after {signum.name}"
    assert f"{signum.name}: stopping; the bytes fetched so far stay in the cache" in running.stderr
    # SHARD_1's bytes stay; SHARD_2, fetched alongside, may have left its own partial file.
    assert partial_size(tmp_path / "hf", shard_digest(repo)) == AT
    assert not list((tmp_path / "hf").rglob("*.lease")), "the lease is handed back"


def test_a_403_on_a_file_is_reported_as_a_refusal_at_once(hub, repo, tmp_path, launcher_python):
    hub.forbidden.add(SHARD_1)
    result = launch(launcher_env(tmp_path, hub.url), python=launcher_python)
    assert result.returncode == 4
    assert (
        f"cannot fetch {SHARD_1} of {CHECKPOINT}@main: {hub.url} answered 403 Forbidden"
        in result.stderr
    )
    assert "HF_TOKEN is not set" in result.stderr
    assert "network path" not in result.stderr and "attempt 2" not in result.stderr
    assert len(hub.gets(SHARD_1)) == 1


def test_a_403_names_the_stored_token_that_was_sent(hub, repo, tmp_path):
    """Without HF_TOKEN, huggingface_hub sends the token `hf auth login` stored
    (utils/_auth.py, get_token): the refusal is that token's, not a missing HF_TOKEN."""
    hub.forbidden.add(SHARD_1)
    token_file = tmp_path / "hf-token"
    token_file.write_text("hf_StoredTok3nValue\n")
    result = launch(launcher_env(tmp_path, hub.url, HF_TOKEN_PATH=token_file))
    assert result.returncode == 4
    assert f"the token stored in {token_file} lacks access" in result.stderr
    assert "HF_TOKEN is not set" not in result.stderr and "Tok3n" not in result.stderr


@pytest.mark.root
def test_a_read_only_cache_is_named_as_such_with_preflight_off(
    hub, repo, tmp_path, launcher_python
):
    require_root("mounting a read-only tmpfs")
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64m", "tmpfs", str(mount)], check=True)
    try:
        result = launch(
            launcher_env(tmp_path, hub.url, HF_HOME=mount, PREFLIGHT="off"), python=launcher_python
        )
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert result.returncode == 4
    assert f"cannot write the checkpoint into the Hugging Face cache {mount}/hub" in result.stderr
    assert "Read-only file system" in result.stderr and "Mount a writable volume" in result.stderr
    assert "network path" not in result.stderr and "attempt 2" not in result.stderr
    assert not [r for r in hub.requests if "/resolve/" in r.path]


@pytest.mark.root
def test_free_space_counts_the_bytes_partial_files_already_hold(
    hub, repo, tmp_path, launcher_python
):
    """On a filesystem too small for the whole checkpoint but not for what is left of it."""
    require_root("mounting a tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=14m", "tmpfs", str(mount)], check=True)
    try:
        blobs = blob_dir(mount)
        blobs.mkdir(parents=True)
        data = repo.commits[repo.refs["main"]][SHARD_1]
        (blobs / (shard_digest(repo) + ".incomplete")).write_bytes(data[:AT])
        env = launcher_env(tmp_path, hub.url, HF_HOME=mount)
        result = launch(env, python=launcher_python)
        assert result.returncode == 0, result.stderr
        assert "0.01 GB (11534336 bytes) of them are already on disk" in result.stderr
        assert [g.range for g in hub.gets(SHARD_1)] == [f"bytes={AT}-"]
        assert partial_files(mount) == []
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("endpoint", ["http://[::1", "ftp://hub.example", "hub.example"])
def test_an_hf_endpoint_that_is_no_url_is_a_configuration_error(
    tmp_path, endpoint, launcher_python
):
    result = launch(launcher_env(tmp_path, endpoint), python=launcher_python)
    assert result.returncode == 2, result.stderr
    assert f"HF_ENDPOINT is {endpoint!r}; accepted: an http:// or https:// URL" in result.stderr
    assert "MODEL" not in result.stderr and "Traceback" not in result.stderr


def test_no_partial_file_is_left_by_a_successful_fetch(hub, repo, tmp_path, launcher_python):
    """huggingface_hub's own partial file of an earlier start (``<etag>.<8 hex>.incomplete``,
    which it never resumes) is removed once that blob is complete, when no one writes it."""
    blobs = blob_dir(tmp_path / "hf")
    blobs.mkdir(parents=True)
    left = blobs / f"{shard_digest(repo)}.1a2b3c4d.incomplete"
    left.write_bytes(b"x" * 1000)
    os.utime(left, (time.time() - 3600, time.time() - 3600))
    result = launch(launcher_env(tmp_path, hub.url), python=launcher_python)
    assert result.returncode == 0, result.stderr
    assert partial_files(tmp_path / "hf") == []


# A prefetch that meets something else than a file at refs/main ends within this bound (the
# interpreter's start, the Hub's listing and the tiny checkpoint's transfer included), where
# it used to block after its "fetching" line (a FIFO) or read until the OOM killer came (a
# link to /dev/zero: the cap on the address space makes that a quick failure here).
DONE_WITHIN_S = 30
HUNG_AFTER_S = 45
MEMORY_CAP_BYTES = 4 * 2**30


def repo_folder(hf_home) -> object:
    return hf_home / "hub" / ("models--" + CHECKPOINT.replace("/", "--"))


@pytest.mark.parametrize("kind", ["fifo", "a link to /dev/zero"])
def test_a_ref_that_is_no_file_is_replaced_by_the_commit_the_hub_names(hub, repo, tmp_path, kind):
    """The Hub just said which commit main is: a FIFO or device there holds no ref, and is
    replaced (the name, never what it points at) by the file huggingface_hub would write."""
    ref = repo_folder(tmp_path / "hf") / "refs" / "main"
    ref.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(ref)
    else:
        ref.symlink_to("/dev/zero")
    started = time.monotonic()
    result = launch(
        launcher_env(tmp_path, hub.url),
        ["prefetch"],
        timeout=HUNG_AFTER_S,
        memory_bytes=MEMORY_CAP_BYTES,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert not ref.is_symlink() and ref.read_text() == repo.refs["main"]
    assert took < DONE_WITHIN_S, f"done after {took:.1f} s"


def test_a_ref_that_is_a_directory_is_refused_before_any_transfer(hub, repo, tmp_path):
    ref = repo_folder(tmp_path / "hf") / "refs" / "main"
    (ref / "inside").mkdir(parents=True)
    started = time.monotonic()
    result = launch(launcher_env(tmp_path, hub.url), ["prefetch"], timeout=HUNG_AFTER_S)
    took = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert error_lines(result.stderr) == [
        f"cannot fetch {CHECKPOINT}@main: {ref} is a directory; huggingface_hub keeps the "
        "commit of that branch or tag in a file there. Remove the directory "
        f"(rm -r {ref}), then start again."
    ], result.stderr
    assert "Traceback" not in result.stderr
    assert not [r for r in hub.requests if "/resolve/" in r.path], "nothing was fetched"
    assert (ref / "inside").is_dir(), "the directory is the user's to remove"
    assert took < DONE_WITHIN_S, f"refused after {took:.1f} s"
