"""The launcher fetches the checkpoint with the real huggingface_hub from a fake Hub on
127.0.0.1, then execs the engine with the local snapshot path; clients see the repo id."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess

import pytest

from tests.fakes.hub import FakeRepo, longcat_like_files
from tests.machine import require_root
from tests.weights.support import (
    CHECKPOINT,
    engine_record,
    flag_value,
    launch,
    launcher_env,
    snapshot,
)

NOT_LOADED = {"README.md", "figures/benchmark.png", "pytorch_model.bin", ".gitattributes"}
SHARD_1 = "model-00001-of-00002.safetensors"
SHARD_2 = "model-00002-of-00002.safetensors"


def loaded_files(repo: FakeRepo) -> set[str]:
    return set(repo.commits[repo.refs["main"]]) - NOT_LOADED


def files_under(path) -> set[str]:
    return {
        os.path.relpath(os.path.join(root, name), path)
        for root, _, names in os.walk(path)
        for name in names
    }


def test_first_start_fetches_what_the_engine_loads_and_execs_on_the_snapshot(hub, repo, tmp_path):
    env = launcher_env(tmp_path, hub.url)
    result = launch(env)
    assert result.returncode == 0, result.stderr
    sha = repo.refs["main"]
    local = snapshot(tmp_path / "hf", CHECKPOINT, sha)
    argv = engine_record(env)["argv"]
    assert argv[1:3] == ["serve", str(local)]
    assert flag_value(argv, "--served-model-name") == CHECKPOINT
    assert files_under(local) == loaded_files(repo)
    for name in loaded_files(repo):
        assert (local / name).read_bytes() == repo.commits[sha][name]
    fetched = {
        r.path.rsplit(f"/{sha}/", 1)[1]
        for r in hub.requests
        if r.method == "GET" and "/resolve/" in r.path
    }
    assert fetched == loaded_files(repo), "only the files the engine loads are fetched"
    # Progress: what is fetched, how much, and a progress line that reaches 100 %.
    assert f"fetching 10 of 10 files of {CHECKPOINT}@main (commit {sha})" in result.stderr
    assert "download: 0.01 of 0.01 GB (100%)" in result.stderr
    assert f"exec vllm serve {local} " in result.stdout


def test_second_start_makes_no_network_request(hub, repo, tmp_path):
    env = launcher_env(tmp_path, hub.url)
    assert launch(env).returncode == 0
    first_argv = engine_record(env)["argv"]
    seen = len(hub.requests)
    second = launch(env)
    assert second.returncode == 0, second.stderr
    assert len(hub.requests) == seen, hub.requests[seen:]
    assert "is complete in the cache" in second.stderr
    assert engine_record(env)["argv"] == first_argv


def test_a_transfer_cut_midway_resumes_with_a_range_request(hub, repo, tmp_path):
    cut = 11 * 2**20
    hub.cut_once[SHARD_1] = cut
    env = launcher_env(tmp_path, hub.url)
    result = launch(env)
    assert result.returncode == 0, result.stderr
    first, *rest = hub.gets(SHARD_1)
    assert first.range is None
    assert len(rest) == 1 and rest[0].range is not None, hub.gets(SHARD_1)
    resumed_at = int(rest[0].range.removeprefix("bytes=").split("-")[0])
    assert 0 < resumed_at <= cut, "the retry asks only for the bytes not yet written"
    data = (snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"]) / SHARD_1).read_bytes()
    assert (
        hashlib.sha256(data).digest()
        == hashlib.sha256(repo.commits[repo.refs["main"]][SHARD_1]).digest()
    )


def test_a_failed_start_is_resumed_by_the_next_one_without_refetching(hub, repo, tmp_path):
    hub.broken.add(SHARD_2)
    env = launcher_env(tmp_path, hub.url)
    failed = launch(env)
    assert failed.returncode == 4
    assert f"cannot fetch {CHECKPOINT}@main" in failed.stderr
    assert "(attempt 3 of 3)" in failed.stderr, "retried within the start first"
    assert "Traceback" not in failed.stderr
    done_before = {
        r.path
        for r in hub.requests
        if r.method == "GET" and "/resolve/" in r.path and not r.path.endswith(SHARD_2)
    }
    hub.broken.clear()
    seen = len(hub.requests)
    second = launch(env)
    assert second.returncode == 0, second.stderr
    refetched = {r.path for r in hub.requests[seen:] if r.method == "GET" and "/resolve/" in r.path}
    assert SHARD_2 in {p.rsplit("/", 1)[1] for p in refetched}
    # Files the first start completed are kept; at most the ones it never got to come again.
    completed = {
        p
        for p in done_before
        if (snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"]) / p.rsplit("/", 1)[1]).exists()
    }
    assert not (refetched & completed)


def test_offline_start_uses_a_complete_cache_without_the_hub(hub, repo, tmp_path):
    env = launcher_env(tmp_path, hub.url)
    assert launch(env).returncode == 0
    seen = len(hub.requests)
    offline = launch(dict(env, HF_HUB_OFFLINE="1"))
    assert offline.returncode == 0, offline.stderr
    assert len(hub.requests) == seen
    argv = engine_record(env)["argv"]
    assert argv[2] == str(snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"]))


def test_offline_start_with_nothing_cached_is_refused(hub, repo, tmp_path):
    env = launcher_env(tmp_path, hub.url, HF_HUB_OFFLINE="1")
    result = launch(env)
    assert result.returncode == 4
    assert "HF_HUB_OFFLINE is on" in result.stderr
    assert f"{CHECKPOINT}@main is not complete in the cache" in result.stderr
    assert "nothing of it is cached" in result.stderr
    assert hub.requests == []
    assert not os.path.exists(env["FAKE_ENGINE_RECORD"])


def test_offline_start_names_the_missing_files(hub, repo, tmp_path):
    hub.broken.add(SHARD_2)
    env = launcher_env(tmp_path, hub.url)
    assert launch(env).returncode == 4
    seen = len(hub.requests)
    result = launch(dict(env, HF_HUB_OFFLINE="1"))
    assert result.returncode == 4
    assert f"these files are missing: {SHARD_2}" in result.stderr
    assert len(hub.requests) == seen


def test_too_little_disk_by_the_hub_sizes_is_refused_before_any_transfer(hub, repo, tmp_path):
    huge = 600 * 10**12
    repo.reported_size[SHARD_1] = huge
    env = launcher_env(tmp_path, hub.url)
    result = launch(env)
    assert result.returncode == 4
    need = huge + sum(
        len(data)
        for name, data in repo.commits[repo.refs["main"]].items()
        if name in loaded_files(repo) and name != SHARD_1
    )
    assert f"need {need / 1e9:.2f} GB ({need} bytes)" in result.stderr
    free = re.search(r"and ([0-9.]+) GB \(([0-9]+) bytes\) are free under", result.stderr)
    assert free and f"{int(free[2]) / 1e9:.2f}" == free[1] and 0 < int(free[2]) < need
    assert "mount a larger volume at HF_HOME" in result.stderr
    assert not [r for r in hub.requests if "/resolve/" in r.path]


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 4 MiB filesystem (tmpfs) at tmp_path/small; needs root, as CI runs."""
    require_root("mounting a tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_too_little_disk_on_a_small_filesystem_is_refused(hub, repo, tmp_path, small_filesystem):
    env = launcher_env(tmp_path, hub.url, HF_HOME=small_filesystem / "hf")
    result = launch(env)
    assert result.returncode == 4
    stat = os.statvfs(small_filesystem)
    free = re.search(
        r"and ([0-9.]+) GB \(([0-9]+) bytes\) are free under (\S+)\. Free", result.stderr
    )
    assert free and free[3] == f"{small_filesystem}/hf/hub", result.stderr
    # What statvfs says now, give or take the lease file and folders the launcher made.
    assert abs(int(free[2]) - stat.f_bavail * stat.f_frsize) <= 16 * stat.f_frsize
    assert not [r for r in hub.requests if "/resolve/" in r.path]


def test_private_repository_needs_the_token_and_never_prints_it(hub, tmp_path):
    token = "hf_secretTOKENvalue123"
    hub.add(FakeRepo(CHECKPOINT, longcat_like_files(), token=token))
    env = launcher_env(tmp_path, hub.url)
    denied = launch(env)
    assert denied.returncode == 4
    assert (
        f"has no repository {CHECKPOINT}, or it is private and HF_TOKEN is not set" in denied.stderr
    )
    allowed = launch(dict(env, HF_TOKEN=token))
    assert allowed.returncode == 0, allowed.stderr
    assert token not in allowed.stdout + allowed.stderr + denied.stdout + denied.stderr
    assert all(r.authorization == f"Bearer {token}" for r in hub.requests[-3:])


def test_model_revision_pins_a_tag_or_a_commit(hub, repo, tmp_path):
    newer = longcat_like_files(seed=1)
    older_sha = repo.refs["main"]
    repo.refs["v1"] = older_sha
    repo.commit(newer, "main")
    for revision in ("v1", older_sha):
        env = launcher_env(tmp_path / revision, hub.url, MODEL_REVISION=revision)
        result = launch(env)
        assert result.returncode == 0, result.stderr
        assert engine_record(env)["argv"][2] == str(
            snapshot(tmp_path / revision / "hf", CHECKPOINT, older_sha)
        )


def test_unknown_revision_and_repository_are_refused(hub, repo, tmp_path):
    env = launcher_env(tmp_path, hub.url, MODEL_REVISION="no-such-branch")
    result = launch(env)
    assert result.returncode == 4
    assert f"{CHECKPOINT} has no revision 'no-such-branch'" in result.stderr
    result = launch(launcher_env(tmp_path, hub.url, MODEL="org/absent"))
    assert result.returncode == 4
    assert "has no repository org/absent" in result.stderr


def test_repository_without_config_json_is_refused(hub, tmp_path):
    files = longcat_like_files()
    del files["config.json"]
    hub.add(FakeRepo("org/no-config", files))
    result = launch(launcher_env(tmp_path, hub.url, MODEL="org/no-config"))
    assert result.returncode == 4
    assert "has no config.json, so it is not a checkpoint" in result.stderr


def test_unreachable_hub_names_what_is_missing(tmp_path, unused_port):
    env = launcher_env(tmp_path, f"http://127.0.0.1:{unused_port}")
    result = launch(env)
    assert result.returncode == 4
    assert f"cannot look up {CHECKPOINT}@main" in result.stderr
    assert "HF_HUB_OFFLINE=1" in result.stderr
    assert "Traceback" not in result.stderr


def test_download_0_leaves_the_repo_id_to_the_engine(hub, repo, tmp_path):
    env = launcher_env(tmp_path, hub.url, DOWNLOAD="0")
    result = launch(env)
    assert result.returncode == 0, result.stderr
    argv = engine_record(env)["argv"]
    assert argv[2] == CHECKPOINT
    assert argv[argv.index("--served-model-name") + 1] == CHECKPOINT
    assert hub.requests == []
