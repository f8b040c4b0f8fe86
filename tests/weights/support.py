"""Helpers for the weights and preflight tests: run the real launcher as a container would.

The launcher runs as ``python -m entrypoint`` from the repository root, with a clean
environment and a ``vllm`` stand-in on PATH (``fakes/bin/vllm``) that records the argv and
environment it was exec'd with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_BIN = Path(__file__).resolve().parents[1] / "fakes" / "recorders" / "bin"
# The checkpoint PRECISION=fp8 selects; the fake Hub serves a tiny repository under its id.
CHECKPOINT = "meituan-longcat/LongCat-Flash-Chat-FP8"


def launcher_env(tmp_path: Path, hub_url: str | None = None, **extra) -> dict:
    """A clean environment for a one-node vLLM launch with preflight off, cache in tmp_path."""
    env = {
        "PATH": f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "ENGINE": "vllm",
        "PREFLIGHT": "off",
        "HF_HOME": str(tmp_path / "hf"),
        "FAKE_ENGINE_RECORD": str(tmp_path / "engine.json"),
    }
    if hub_url:
        env["HF_ENDPOINT"] = hub_url
    env.update({name: str(value) for name, value in extra.items()})
    return env


def launch(env: dict, args=(), timeout: float = 120, python_args=()) -> subprocess.CompletedProcess:
    """Run ``python -m entrypoint ARGS`` to its exec (or its refusal); capture its output."""
    record = Path(env["FAKE_ENGINE_RECORD"]) if "FAKE_ENGINE_RECORD" in env else None
    if record is not None and record.exists():
        record.unlink()
    return subprocess.run([sys.executable, *python_args, "-m", "entrypoint", *args], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def engine_record(env: dict) -> dict:
    """What the fake engine saw: ``{"argv": [...], "env": {...}, "pid": N}``."""
    return json.loads(Path(env["FAKE_ENGINE_RECORD"]).read_text())


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value after ``flag`` in ``argv``, or ``None``."""
    return argv[argv.index(flag) + 1] if flag in argv else None


def snapshot(hf_home: Path, repo_id: str, sha: str) -> Path:
    """Where huggingface_hub keeps ``repo_id`` at commit ``sha`` under ``HF_HOME``."""
    return hf_home / "hub" / ("models--" + repo_id.replace("/", "--")) / "snapshots" / sha
