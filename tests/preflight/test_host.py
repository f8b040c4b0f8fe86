"""/dev/shm size, the memlock limit, and a writable Hugging Face cache, on the real host."""

from __future__ import annotations

import os
import resource

import pytest

from entrypoint.preflight import check_memlock, check_shm, check_writable
from tests.preflight.support import plan_for


def test_shared_memory_of_a_gigabyte_or_more_passes(tmpfs):
    outcome = check_shm(str(tmpfs("2g")))
    assert outcome.ok and "is 2 GiB >= 1 GiB" in outcome.text


def test_dockers_default_64_mib_shared_memory_fails(tmpfs):
    path = tmpfs("64m")
    outcome = check_shm(str(path))
    assert not outcome.ok
    assert f"{path} is 64 MiB; NCCL and the engine's worker processes need at least 1 GiB" \
        in outcome.text
    assert "--ipc=host (compose: ipc: host)" in outcome.text


def test_missing_shared_memory_fails(tmp_path):
    outcome = check_shm(str(tmp_path / "no-shm"))
    assert not outcome.ok and "cannot be read" in outcome.text and "--ipc=host" in outcome.text


@pytest.fixture
def memlock():
    """Lower this process's soft RLIMIT_MEMLOCK for the test; restore it afterwards."""
    saved = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    yield lambda soft: resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, saved[1]))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, saved)


def test_unlimited_memlock_passes_on_two_nodes():
    # Raising the limit needs CAP_SYS_RESOURCE, which containers usually drop: judge the
    # limits a `--ulimit memlock=-1` container has.
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    outcome = check_memlock(plan_for(PRECISION="bf16", MASTER_IP="127.0.0.1"), unlimited)
    assert outcome.ok and outcome.text == "memlock limit unlimited (hard unlimited)"


def test_limited_memlock_fails_on_two_nodes(memlock):
    memlock(64 * 1024)
    outcome = check_memlock(plan_for(PRECISION="bf16", MASTER_IP="127.0.0.1"))
    assert not outcome.ok
    assert outcome.text.startswith("memlock limit 64 KiB (hard ")
    assert "across 2 nodes NCCL registers its buffers with the RDMA network card" in outcome.text
    assert "--ulimit memlock=-1 (compose: ulimits: memlock: -1)" in outcome.text


def test_limited_memlock_passes_on_one_node(memlock):
    memlock(64 * 1024)
    outcome = check_memlock(plan_for(PRECISION="fp8"))
    assert outcome.ok and "one node needs no locked memory" in outcome.text


def test_writable_cache_passes(tmp_path):
    outcome = check_writable(str(tmp_path / "hf" / "hub"))
    assert outcome.ok and (tmp_path / "hf" / "hub").is_dir()
    assert os.listdir(tmp_path / "hf" / "hub") == [], "the probe file is removed"


def test_read_only_cache_fails(tmpfs):
    path = tmpfs("1m", "ro")
    outcome = check_writable(str(path / "hub"))
    assert not outcome.ok
    assert f"the Hugging Face cache {path}/hub is not writable (Read-only file system)" \
        in outcome.text
    assert "Mount a writable volume at HF_HOME" in outcome.text


def test_cache_under_a_file_fails(tmp_path):
    (tmp_path / "file").write_text("")
    outcome = check_writable(str(tmp_path / "file" / "hub"))
    assert not outcome.ok and "(Not a directory)" in outcome.text
