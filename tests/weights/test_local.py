"""A local MODEL is used as given; a cache repository folder resolves to its snapshot."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from entrypoint.errors import WeightsError
from entrypoint.plan import resolve_plan
from entrypoint.settings import load_settings
from entrypoint.weights import locate, prepare
from tests.machine import require_root

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def plan_for(model: str, **env):
    settings = load_settings({"ENGINE": "sglang", "MODEL": model, **env})
    return resolve_plan(settings), settings.values


def prepared(plan, values, env=None):
    """The plan the launch builds after the weights step (entrypoint.launch)."""
    return plan.replace(**prepare(plan, values, env or {}).plan_changes())


def checkpoint(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def cache_folder(tmp_path, snapshots=(COMMIT_A,), main=None):
    folder = tmp_path / "hub" / "models--meituan-longcat--LongCat-Flash-Chat"
    for commit in snapshots:
        checkpoint(folder / "snapshots" / commit)
    if main:
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(main)
    return folder


def test_a_checkpoint_directory_is_used_as_given(tmp_path):
    model = checkpoint(tmp_path / "ckpt")
    plan, values = plan_for(str(model))
    plan = prepared(plan, values)
    assert plan.model == str(model)
    # Never the path: the repo id VARIANT and PRECISION select (entrypoint.plan).
    assert plan.served_model_name == "meituan-longcat/LongCat-Flash-Chat-FP8"


def test_a_directory_without_config_json_is_refused(tmp_path):
    (tmp_path / "ckpt").mkdir()
    plan, values = plan_for(str(tmp_path / "ckpt"))
    with pytest.raises(WeightsError, match="holds no config.json, so it is not a checkpoint"):
        locate(plan, values, {})


@pytest.fixture
def as_nobody():
    """A folder under /tmp that another user can reach, and a way to act as that user
    (the effective uid; the kernel's real permission checks, which root bypasses)."""
    require_root("switching the effective user")
    base = Path(tempfile.mkdtemp(prefix="longcat-unreadable-", dir="/tmp"))
    base.chmod(0o755)

    class Nobody:
        folder = base

        def __enter__(self):
            os.seteuid(65534)

        def __exit__(self, *exc):
            os.seteuid(0)

    yield Nobody()
    shutil.rmtree(base)


@pytest.mark.root
@pytest.mark.parametrize("closed", ["checkpoint", "parent"])
def test_a_directory_that_cannot_be_read_is_named_so(as_nobody, closed):
    model = checkpoint(as_nobody.folder / "ckpt")
    (model if closed == "checkpoint" else as_nobody.folder).chmod(0o700)
    plan, values = plan_for(str(model))
    with as_nobody, pytest.raises(WeightsError) as error:
        locate(plan, values, {})
    assert (
        f"{model} cannot be read by this process (uid 65534): Permission denied"
        in error.value.message()
    )
    assert "config.json" not in error.value.message()


def test_a_missing_directory_is_refused(tmp_path):
    plan, values = plan_for(str(tmp_path / "absent"))
    with pytest.raises(WeightsError, match="is not a directory on this host. Mount the "):
        locate(plan, values, {})


def test_a_cache_folder_resolves_to_refs_main(tmp_path):
    folder = cache_folder(tmp_path, (COMMIT_A, COMMIT_B), main=COMMIT_B)
    plan, values = plan_for(str(folder), MTP="1")
    plan = prepared(plan, values)
    assert plan.model == str(folder / "snapshots" / COMMIT_B)
    assert plan.served_model_name == "meituan-longcat/LongCat-Flash-Chat"
    assert plan.draft_model == plan.model


def test_a_cache_folder_with_one_snapshot_and_no_refs_uses_it(tmp_path):
    folder = cache_folder(tmp_path, (COMMIT_A,))
    plan, values = plan_for(str(folder))
    plan = prepared(plan, values)
    assert plan.model == str(folder / "snapshots" / COMMIT_A)


def test_model_revision_picks_a_snapshot_of_a_cache_folder(tmp_path):
    folder = cache_folder(tmp_path, (COMMIT_A, COMMIT_B), main=COMMIT_B)
    plan, values = plan_for(str(folder), MODEL_REVISION=COMMIT_A)
    plan = prepared(plan, values)
    assert plan.model == str(folder / "snapshots" / COMMIT_A)


def test_a_cache_folder_without_a_usable_snapshot_is_refused(tmp_path):
    folder = cache_folder(tmp_path, (COMMIT_A, COMMIT_B))
    plan, values = plan_for(str(folder))
    with pytest.raises(WeightsError) as error:
        locate(plan, values, {})
    assert (
        f"no snapshot for refs/main (snapshots: {COMMIT_A}, {COMMIT_B}; refs: none)"
        in error.value.message()
    )
    assert "Set MODEL_REVISION to one of those" in error.value.message()


def test_a_snapshot_without_config_json_is_refused(tmp_path):
    folder = cache_folder(tmp_path, (COMMIT_A,))
    (folder / "snapshots" / COMMIT_A / "config.json").unlink()
    plan, values = plan_for(str(folder))
    with pytest.raises(WeightsError, match="holds no config.json"):
        locate(plan, values, {})


def test_a_repo_id_without_huggingface_hub_installed_is_refused(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    plan, values = plan_for("meituan-longcat/LongCat-Flash-Chat")
    with pytest.raises(WeightsError, match="the huggingface_hub package is not installed here"):
        locate(plan, values, {"HF_HOME": str(tmp_path)})


def test_a_repo_id_huggingface_hub_refuses_is_a_weights_error(tmp_path):
    # Settings refuse such ids already (exit 2); locate() still guards its own input, for
    # a huggingface_hub whose rules differ from the ones settings mirror.
    plan, values = plan_for("org/name")
    plan = plan.replace(model="org/-name-")
    with pytest.raises(
        WeightsError,
        match=r"MODEL=org/-name- \(MODEL_REVISION=main\) is "
        "refused by huggingface_hub",
    ):
        locate(plan, values, {"HF_HOME": str(tmp_path)})


# A launch that meets something else than a file where a ref belongs refuses at once (the
# interpreter's start included), where it used to block (a FIFO) or read without end (a
# link to /dev/zero: the OOM killer ended it). The cap on its address space turns a read
# without end into a quick failure of the test, not a host out of memory.
REFUSED_WITHIN_S = 20
HUNG_AFTER_S = 40
MEMORY_CAP_BYTES = 2 * 2**30


def plant_ref(ref: Path, kind: str) -> None:
    ref.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(ref)
    elif kind == "directory":
        ref.mkdir()
    else:
        ref.symlink_to("/dev/zero")


@pytest.mark.parametrize(
    "kind,said",
    [
        ("fifo", "a FIFO (named pipe)"),
        ("directory", "a directory"),
        ("a link to /dev/zero", "a character device"),
    ],
)
def test_a_cache_folder_whose_ref_is_not_a_file_is_refused_at_once(tmp_path, kind, said):
    """Refused rather than passed over: with no usable refs/main the folder's only snapshot
    would be served, which may not be the commit the ref was meant to name."""
    import time

    from tests.weights.support import error_lines, launch, launcher_env

    folder = cache_folder(tmp_path, (COMMIT_A,))
    ref = folder / "refs" / "main"
    plant_ref(ref, kind)
    env = launcher_env(tmp_path, MODEL=folder)
    started = time.monotonic()
    result = launch(env, timeout=HUNG_AFTER_S, memory_bytes=MEMORY_CAP_BYTES)
    took = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert error_lines(result.stderr) == [
        f"MODEL={folder} is a Hugging Face cache folder, but its ref {ref} is {said}, not "
        "a file holding a commit id (huggingface_hub writes each ref as a plain file). "
        f"Remove it, set MODEL_REVISION to one of its snapshots ({COMMIT_A}), or set MODEL "
        "to a snapshot directory."
    ], result.stderr
    assert "Traceback" not in result.stderr
    assert took < REFUSED_WITHIN_S, f"refused after {took:.1f} s"
