"""The launcher stays light: what each mode imports, measured with ``python -X importtime``.

The launcher runs on every container start: DOWNLOAD=0 with PREFLIGHT=off imports neither
module of this step, the host checks import only the standard library (plus pynvml for the
GPUs), and huggingface_hub is imported only when a repo id has to be looked up.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.fakes.hub import FakeHub, FakeRepo, longcat_like_files
from tests.preflight.test_launch import preflight_env
from tests.weights.support import CHECKPOINT, launch, launcher_env

HEAVY = {"huggingface_hub", "pynvml", "tqdm", "httpx", "httpx2", "requests"}


def imported(stderr: str) -> set[str]:
    """The modules a ``-X importtime`` run imported, and their top-level packages."""
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.M))
    return names | {name.split(".")[0] for name in names}


def run(env, args=()):
    """What the launcher imported beyond the interpreter's own start-up (site, .pth files)."""
    result = launch(env, args, python_args=("-X", "importtime"))
    assert result.returncode == 0, result.stderr[-2000:]
    baseline = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return imported(result.stderr) - imported(baseline.stderr)


def test_download_0_and_preflight_off_import_nothing_of_this_step(tmp_path):
    names = run(launcher_env(tmp_path, DOWNLOAD="0", PREFLIGHT="off"))
    assert not names & (
        HEAVY
        | {"entrypoint.weights", "entrypoint.preflight", "socket", "resource", "json", "ipaddress"}
    )


def test_local_model_with_checks_imports_no_hub_library(tmp_path):
    names = run(preflight_env(tmp_path, mode="warn"))
    assert "entrypoint.weights" in names and "entrypoint.preflight" in names
    assert "pynvml" in names  # the fake, from nvml_site
    assert not names & {"huggingface_hub", "tqdm", "httpx", "httpx2", "requests"}


def test_dry_run_imports_no_library_and_checks_nothing(tmp_path):
    names = run(launcher_env(tmp_path), ("--dry-run",))
    assert not names & (HEAVY | {"socket", "resource"})


def test_repo_id_imports_the_hub_library_only_then(tmp_path):
    with FakeHub() as hub:
        hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))
        names = run(launcher_env(tmp_path, hub.url))
    assert "huggingface_hub" in names
