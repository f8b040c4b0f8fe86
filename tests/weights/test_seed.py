"""The files the image ships in its seed (LONGCAT_HF_SEED) become visible in the mounted
cache before the exec: each models--* folder the cache lacks is linked, nothing copied."""

from __future__ import annotations

import os
import subprocess

import pytest

from entrypoint.seed import link_seed
from tests.machine import require_root
from tests.weights.support import engine_record, launch, launcher_env

KERNEL = "kernels-community/flash-mla"
COMMIT = "c" * 40


def hub_repo(hub, repo_id: str, files: dict[str, bytes], commit: str = COMMIT):
    """A repository in huggingface_hub's cache layout, as a base image's cache holds it."""
    folder = hub / ("models--" + repo_id.replace("/", "--"))
    for name, data in files.items():
        blob = folder / "blobs" / f"{abs(hash(name)):x}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer = folder / "snapshots" / commit / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return folder


@pytest.fixture
def seed(tmp_path):
    """A seed as the images make it: the base's whole HF_HOME, with hub/ inside."""
    root = tmp_path / "seed"
    hub_repo(root / "hub", KERNEL, {"build/kernel.so": b"\x7fELF kernel"})
    hub_repo(root / "hub", "org/shipped", {"config.json": b"{}"})
    return root


def test_the_launch_links_what_the_cache_lacks_and_keeps_what_it_has(seed, tmp_path):
    own = hub_repo(tmp_path / "hf" / "hub", "org/shipped", {"config.json": b'{"own": 1}'})
    env = launcher_env(tmp_path, DOWNLOAD="0", LONGCAT_HF_SEED=seed)
    result = launch(env)
    assert result.returncode == 0, result.stderr
    assert engine_record(env)["argv"][:2] == ["vllm", "serve"]
    linked = tmp_path / "hf" / "hub" / "models--kernels-community--flash-mla"
    assert linked.is_symlink() and os.readlink(linked) == str(seed / "hub" / linked.name)
    assert not own.is_symlink(), "a folder the cache has is left alone"
    assert (
        f"seed: linked 1 folder the image ships into {tmp_path}/hf/hub: "
        "models--kernels-community--flash-mla" in result.stderr
    )


def test_huggingface_hub_reads_the_linked_files_as_cached(seed, tmp_path):
    from huggingface_hub import try_to_load_from_cache

    env = {"HF_HOME": str(tmp_path / "hf"), "LONGCAT_HF_SEED": str(seed)}
    assert link_seed(env, log=lambda line: None) == [
        "models--kernels-community--flash-mla",
        "models--org--shipped",
    ]
    found = try_to_load_from_cache(KERNEL, "build/kernel.so", cache_dir=tmp_path / "hf" / "hub")
    assert found == str(
        tmp_path
        / "hf"
        / "hub"
        / "models--kernels-community--flash-mla"
        / "snapshots"
        / COMMIT
        / "build"
        / "kernel.so"
    )
    with open(found, "rb") as f:
        assert f.read() == b"\x7fELF kernel"
    # Nothing was copied: every file under the cache is the seed's, through one link.
    assert not [
        p
        for p in (tmp_path / "hf").rglob("*")
        if p.is_file() and not any(parent.is_symlink() for parent in [p, *p.parents])
    ]


def test_a_link_to_a_seed_that_is_not_here_is_replaced(seed, tmp_path):
    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    (hub / "models--kernels-community--flash-mla").symlink_to("/opt/another-image/hf-seed/x")
    lines: list[str] = []
    linked = link_seed(
        {"HF_HOME": str(tmp_path / "hf"), "LONGCAT_HF_SEED": str(seed)}, log=lines.append
    )
    assert "models--kernels-community--flash-mla" in linked
    assert (hub / "models--kernels-community--flash-mla" / "refs" / "main").read_text() == COMMIT
    assert not list(hub.glob("*.seed")), "no temporary link is left"


def test_a_seed_that_is_the_hub_folder_itself_works_too(seed, tmp_path):
    linked = link_seed(
        {"HF_HUB_CACHE": str(tmp_path / "cache"), "LONGCAT_HF_SEED": str(seed / "hub")},
        log=lambda line: None,
    )
    assert linked == ["models--kernels-community--flash-mla", "models--org--shipped"]


def test_a_missing_seed_is_logged_and_the_launch_goes_on(tmp_path):
    env = launcher_env(tmp_path, DOWNLOAD="0", LONGCAT_HF_SEED=tmp_path / "absent")
    result = launch(env)
    assert result.returncode == 0, result.stderr
    assert f"seed: LONGCAT_HF_SEED={tmp_path}/absent cannot be read" in result.stderr


@pytest.mark.root
def test_a_read_only_cache_is_logged_and_the_launch_goes_on(seed, tmp_path):
    require_root("mounting a read-only tmpfs")
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], check=True)
    try:
        env = launcher_env(tmp_path, DOWNLOAD="0", HF_HOME=mount, LONGCAT_HF_SEED=seed)
        result = launch(env)
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert result.returncode == 0, result.stderr
    assert "seed: cannot link the files the image ships" in result.stderr
    assert "Read-only file system" in result.stderr


def test_the_dry_run_names_the_seed_and_links_nothing(seed, tmp_path):
    env = launcher_env(tmp_path, LONGCAT_HF_SEED=seed)
    result = launch(env, ["--dry-run"])
    assert result.returncode == 0, result.stderr
    assert f"{seed}, linked into the cache" in result.stdout
    assert not (tmp_path / "hf").exists()
