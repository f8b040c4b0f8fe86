"""``python -m entrypoint prefetch [--verify]``: the checkpoint a configuration serves, into
its cache, with no engine and no GPU; then a launch finds it complete without the Hub."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.fakes.hub import FakeRepo, git_blob_id, longcat_like_files
from tests.weights.support import (
    CHECKPOINT,
    blob_dir,
    engine_record,
    launch,
    launcher_env,
    partial_files,
    snapshot,
)

SHARD_1 = "model-00001-of-00002.safetensors"
SHARD_2 = "model-00002-of-00002.safetensors"
BF16 = "meituan-longcat/LongCat-Flash-Chat"


def prefetch_env(tmp_path, hub_url, **extra) -> dict:
    """A job's environment: no ENGINE, no engine on PATH, no GPU, no node settings."""
    env = launcher_env(tmp_path, hub_url, **extra)
    env["PATH"] = "/usr/bin:/bin"
    del env["ENGINE"], env["PREFLIGHT"], env["FAKE_ENGINE_RECORD"]
    return env


def test_prefetch_fills_the_cache_and_the_launch_then_needs_no_hub(hub, tmp_path):
    repo = hub.add(FakeRepo(BF16, longcat_like_files(seed=3)))
    env = prefetch_env(tmp_path, hub.url, PRECISION="bf16")  # two nodes, no MASTER_IP: fine
    result = launch(env, ["prefetch"])
    assert result.returncode == 0, result.stderr
    local = snapshot(tmp_path / "hf", BF16, repo.refs["main"])
    assert f"prefetch: {BF16}@main is complete in {tmp_path}/hf/hub ({local})" in result.stdout
    assert partial_files(tmp_path / "hf") == []
    # huggingface_hub reads the cache as its own: one repo, the commit, refs/main, 10 files.
    from huggingface_hub import scan_cache_dir

    scanned = scan_cache_dir(tmp_path / "hf" / "hub")
    assert not scanned.warnings, scanned.warnings
    (cached,) = scanned.repos
    (revision,) = cached.revisions
    assert (cached.repo_id, revision.commit_hash) == (BF16, repo.refs["main"])
    assert revision.refs == frozenset({"main"}) and revision.nb_files == 10
    seen = len(hub.requests)
    serve = launcher_env(tmp_path, hub.url, PRECISION="bf16", NNODES="1", HF_HUB_OFFLINE="1")
    served = launch(serve)
    assert served.returncode == 0, served.stderr
    assert engine_record(serve)["argv"][2] == str(local)
    assert len(hub.requests) == seen


def test_prefetch_verify_checks_what_it_did_not_fetch_itself(hub, repo, tmp_path):
    env = prefetch_env(tmp_path, hub.url)
    fresh = launch(env, ["prefetch", "--verify"])
    assert fresh.returncode == 0, fresh.stderr
    assert "hashing 0 of them, 0.00 GB (10 were checked as they were fetched)" in fresh.stderr
    assert "verify: all 10 files match the Hub's sizes and hashes" in fresh.stderr
    assert "and verified" in fresh.stdout
    again = launch(env, ["prefetch", "--verify"])
    assert again.returncode == 0, again.stderr
    assert "is complete in the cache" in again.stderr and "hashing 10 of them" in again.stderr
    assert not [r for r in hub.requests[-3:] if "/resolve/" in r.path]


def corrupt(path, offset: int = 100) -> None:
    """Flip one byte in place (the size stays)."""
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_prefetch_verify_names_each_file_that_differs_and_how_to_fix_it(hub, repo, tmp_path):
    env = prefetch_env(tmp_path, hub.url)
    assert launch(env, ["prefetch"]).returncode == 0
    local = snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"])
    corrupt((local / SHARD_1).resolve())
    corrupt((local / "config.json").resolve(), 3)
    with open((local / SHARD_2).resolve(), "r+b") as f:
        f.truncate(10)
    result = launch(env, ["prefetch", "--verify"])
    assert result.returncode == 4
    message = result.stderr.strip().splitlines()[-1]
    assert f"3 of 10 files of {CHECKPOINT} (commit {repo.refs['main']}) do not match" in message
    assert f"{SHARD_1}: sha256 " in message and "config.json: git blob id " in message
    assert f"{SHARD_2}: 10 bytes, the Hub lists 1048576" in message
    assert str((local / SHARD_1).resolve()) in message
    assert "Delete those files" in message and "run prefetch again" in message
    for name in (SHARD_1, SHARD_2, "config.json"):
        os.unlink((local / name).resolve())
    repaired = launch(env, ["prefetch", "--verify"])
    assert repaired.returncode == 0, repaired.stderr
    assert "fetching 3 of 10 files" in repaired.stderr
    assert "verify: all 10 files match" in repaired.stderr


def test_prefetch_of_a_local_checkpoint_fetches_nothing(tmp_path):
    model = tmp_path / "ckpt"
    model.mkdir()
    (model / "config.json").write_text("{}")
    env = prefetch_env(tmp_path, None, MODEL=model)
    result = launch(env, ["prefetch"])
    assert result.returncode == 0, result.stderr
    assert f"MODEL={model} is a local checkpoint" in result.stdout
    refused = launch(env, ["prefetch", "--verify"])
    assert refused.returncode == 2
    assert (
        "MODEL" in refused.stderr and "a local directory has none to compare with" in refused.stderr
    )


def test_prefetch_verify_needs_the_hub(hub, repo, tmp_path):
    env = prefetch_env(tmp_path, hub.url)
    assert launch(env, ["prefetch"]).returncode == 0
    offline = launch(dict(env, HF_HUB_OFFLINE="1"), ["prefetch"])
    assert offline.returncode == 0, offline.stderr
    refused = launch(dict(env, HF_HUB_OFFLINE="1"), ["prefetch", "--verify"])
    assert refused.returncode == 2
    assert "HF_HUB_OFFLINE is '1'; accepted: unset, for prefetch --verify" in refused.stderr


@pytest.mark.parametrize(
    "args", [["prefetch", "--all"], ["prefetch", "--verify", "x"], ["prefetch", "--dry-run"]]
)
def test_prefetch_takes_only_verify(tmp_path, args):
    result = launch(prefetch_env(tmp_path, None), args)
    assert result.returncode == 2
    assert "'prefetch' takes no arguments or --verify" in result.stderr


def test_prefetch_leaves_exactly_the_blobs_no_lease_no_partial_file(hub, repo, tmp_path):
    env = prefetch_env(tmp_path, hub.url)
    assert launch(env, ["prefetch"]).returncode == 0
    files = repo.commits[repo.refs["main"]]
    loaded = {
        name: data
        for name, data in files.items()
        if name not in {"README.md", "figures/benchmark.png", "pytorch_model.bin", ".gitattributes"}
    }
    # Blobs are named as huggingface_hub names them: the LFS sha256, else the git blob id.
    expected = {
        hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_blob_id(data)
        for name, data in loaded.items()
    }
    assert {p.name for p in blob_dir(tmp_path / "hf").iterdir()} == expected
    assert not list((tmp_path / "hf").rglob("*.lease"))
