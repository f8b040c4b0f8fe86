"""Progress lines while a download runs, and what the engine is given afterwards (in process).

The rate is the current one: a transfer that stops delivering shows 0 MB/s and for how
long, not a falling average since the start."""

from __future__ import annotations

import threading

from entrypoint import weights
from entrypoint.engines import build_argv
from entrypoint.plan import resolve_plan
from entrypoint.settings import load_settings
from tests.weights.support import CHECKPOINT, flag_value, snapshot, wait_until

SHARD_1 = "model-00001-of-00002.safetensors"


def test_progress_is_logged_while_the_transfer_runs(hub, repo, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "PROGRESS_EVERY_S", 0.02)
    reached, release = threading.Event(), threading.Event()
    hub.pause_at[SHARD_1] = (11 * 2**20, reached, release)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": hub.url}
    settings = load_settings({"ENGINE": "sglang", "MTP": "1"})
    plan = resolve_plan(settings)
    located = weights.locate(plan, settings.values, env)
    assert located.needs_download
    lines: list[str] = []
    result: dict = {}

    def run():
        try:
            result["path"] = weights.fetch(located, env, log=lines.append)
        except Exception as error:  # reported by the assertion below
            result["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert reached.wait(30), "the transfer never reached the pause"
        # The bytes before the pause are on disk while the rest waits; then nothing comes.
        assert wait_until(
            lambda: any(
                line.startswith("download: 0.01 of 0.01 GB (") and "(0%)" not in line
                for line in list(lines)
            )
        )
        assert wait_until(
            lambda: any(", 0.0 MB/s now, no new byte for " in line for line in list(lines))
        )
    finally:
        release.set()
        worker.join(60)
    assert "error" not in result, result.get("error")
    moving = [
        line
        for line in lines
        if line.startswith("download:") and "0.0 MB/s" not in line and "(100%)" not in line
    ]
    assert moving and "min left" in moving[0], lines
    assert lines[-1].startswith("download: 0.01 of 0.01 GB (100%)")
    located.path = result["path"]
    plan = plan.replace(**located.plan_changes())
    local = str(snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"]))
    argv = build_argv(plan)
    assert flag_value(argv, "--model-path") == local
    assert flag_value(argv, "--speculative-draft-model-path") == local
    assert flag_value(argv, "--served-model-name") == CHECKPOINT
