"""/dev/shm size and a writable Hugging Face cache, on the real host (the memlock limit and
the fabric: test_fabric.py)."""

from __future__ import annotations

import os

from entrypoint.preflight import check_shm, check_writable


def test_shared_memory_of_a_gigabyte_or_more_passes(tmpfs):
    outcome = check_shm(str(tmpfs("2g")))
    assert outcome.ok and "is 2 GiB >= 1 GiB" in outcome.text


def test_dockers_default_64_mib_shared_memory_fails(tmpfs):
    path = tmpfs("64m")
    outcome = check_shm(str(path))
    assert not outcome.ok
    assert (
        f"{path} is 64 MiB; NCCL and the engine's worker processes need at least 1 GiB"
        in outcome.text
    )
    assert "--ipc=host (compose: ipc: host)" in outcome.text


def test_missing_shared_memory_fails(tmp_path):
    outcome = check_shm(str(tmp_path / "no-shm"))
    assert not outcome.ok and "cannot be read" in outcome.text and "--ipc=host" in outcome.text


def test_writable_cache_passes_and_the_probe_leaves_nothing_behind(tmp_path):
    outcome = check_writable(str(tmp_path / "hf" / "hub"))
    assert outcome.ok and outcome.text == f"{tmp_path}/hf/hub is writable"
    assert os.listdir(tmp_path) == [], "the probe's file and directories are removed"


def test_the_probe_keeps_what_existed_before(tmp_path):
    (tmp_path / "hf" / "hub" / "models--a--b").mkdir(parents=True)
    assert check_writable(str(tmp_path / "hf" / "hub")).ok
    assert os.listdir(tmp_path / "hf" / "hub") == ["models--a--b"]
    assert check_writable(str(tmp_path / "hf" / "new" / "hub")).ok
    assert sorted(os.listdir(tmp_path / "hf")) == ["hub"]


def test_read_only_cache_fails(tmpfs):
    path = tmpfs("1m", "ro")
    outcome = check_writable(str(path / "hub"))
    assert not outcome.ok
    assert (
        f"the Hugging Face cache {path}/hub is not writable (Read-only file system)" in outcome.text
    )
    assert "Mount a writable volume at HF_HOME" in outcome.text


def test_cache_under_a_file_fails(tmp_path):
    (tmp_path / "file").write_text("")
    outcome = check_writable(str(tmp_path / "file" / "hub"))
    assert not outcome.ok and "(Not a directory)" in outcome.text
