"""The launcher becomes the engine: same process, exact argv, no shell in between.

The engines themselves need GPUs, so small stand-ins under ``fakes/`` record what they
were started with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.launcher.support import REPO, clean_env, command_of, run_launcher

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "recorders"


def fake_env(tmp_path, **extra):
    env = clean_env({"PREFLIGHT": "off", "DOWNLOAD": "0", **extra})
    env["PATH"] = f"{FAKES / 'bin'}:{env['PATH']}"
    env["PYTHONPATH"] = str(FAKES / "python")
    env["FAKE_ENGINE_RECORD"] = str(tmp_path / "record.json")
    return env


@pytest.mark.parametrize(
    "engine_env",
    [
        {
            "ENGINE": "vllm",
            "PRECISION": "bf16",
            "NODE_RANK": "1",
            "MASTER_IP": "127.0.0.1",
            "MTP": "1",
            "EXTRA_ARGS": "--max-model-len 4096",
        },
        {"ENGINE": "sglang", "PRECISION": "fp8", "MTP": "yes", "EXTRA_ARGS": "--log-level debug"},
    ],
    ids=["vllm-headless", "sglang-one-node"],
)
def test_launcher_execs_the_engine_in_its_own_process(engine_env, tmp_path):
    env = fake_env(tmp_path, **engine_env)
    dry = run_launcher(["--dry-run", "--", "--seed", "7"], env)
    assert dry.returncode == 0, dry.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoint", "--seed", "7"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    seen = json.loads((tmp_path / "record.json").read_text())
    assert seen["pid"] == process.pid, "the engine must replace the launcher (exec)"
    want = command_of(dry.stdout)
    assert seen["argv"][1:] == want[1:]
    assert Path(seen["argv"][0]).name == Path(want[0]).name
    assert f"exec {dry.stdout.splitlines()[-1]}" in stdout
    if engine_env["ENGINE"] == "vllm":
        assert seen["env"]["VLLM_ENGINE_READY_TIMEOUT_S"] == "3600"


def test_users_engine_environment_wins(tmp_path):
    env = fake_env(tmp_path, ENGINE="vllm", VLLM_ENGINE_READY_TIMEOUT_S="99")
    assert run_launcher([], env).returncode == 0
    seen = json.loads((tmp_path / "record.json").read_text())
    assert seen["env"]["VLLM_ENGINE_READY_TIMEOUT_S"] == "99"


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_missing_engine_is_named(engine, tmp_path):
    env = clean_env({"ENGINE": engine, "PREFLIGHT": "off", "DOWNLOAD": "0"})
    env["PATH"] = f"{tmp_path}:/usr/bin:/bin"
    result = run_launcher([], env)
    assert result.returncode == 127
    assert f"ENGINE={engine}" in result.stderr and "not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_and_bad_subcommand_usage():
    assert "usage:" in run_launcher(["--help"], clean_env()).stdout
    result = run_launcher(["check", "--bogus"], clean_env({"ENGINE": "vllm"}))
    assert result.returncode == 2 and "usage:" in result.stderr


def test_dry_run_variable_equals_flag():
    env = clean_env({"ENGINE": "vllm", "DRY_RUN": "1"})
    assert command_of(run_launcher([], env).stdout) == command_of(
        run_launcher(["--dry-run"], clean_env({"ENGINE": "vllm"})).stdout
    )


def test_dry_run_anywhere_before_the_separator_starts_nothing(tmp_path):
    env = fake_env(tmp_path, ENGINE="vllm")
    result = run_launcher(["--max-model-len", "100", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "record.json").exists(), "a dry run must not start the engine"
    assert command_of(result.stdout)[-2:] == ["--max-model-len", "100"]
    after = run_launcher(["--seed", "1", "--", "--dry-run"], env)
    assert after.returncode == 0
    seen = json.loads((tmp_path / "record.json").read_text())
    assert seen["argv"][-3:] == ["--seed", "1", "--dry-run"], "after -- it is the engine's"
