"""Helpers for the weights and preflight tests: run the real launcher as a container would.

The launcher runs as ``python -m entrypoint`` from the repository root, with a clean
environment and a ``vllm`` stand-in on PATH (``fakes/bin/vllm``) that records the argv and
environment it was exec'd with.
"""

from __future__ import annotations

import json
import os
import resource
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


def launch(
    env: dict,
    args=(),
    timeout: float = 120,
    python_args=(),
    python: str | None = None,
    memory_bytes: int | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -m entrypoint ARGS`` to its exec (or its refusal); capture its output.

    ``python``: the interpreter (default: this test run's). ``memory_bytes``: a cap on its
    address space (``RLIMIT_AS``, as ``ulimit -v``), so a launcher that would read without
    end fails with a MemoryError instead of growing until the OOM killer comes.
    """
    record = Path(env["FAKE_ENGINE_RECORD"]) if "FAKE_ENGINE_RECORD" in env else None
    if record is not None and record.exists():
        record.unlink()

    def cap_memory() -> None:  # in the child: nothing imported there (other threads run)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return subprocess.run(
        [python or sys.executable, *python_args, "-m", "entrypoint", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap_memory if memory_bytes else None,
    )


def error_lines(stderr: str) -> list[str]:
    """The ``longcat-deploy: error: ...`` lines of a launcher's stderr, without that prefix
    (a refusal prints exactly one)."""
    prefix = "longcat-deploy: error: "
    return [line[len(prefix) :] for line in stderr.splitlines() if line.startswith(prefix)]


def engine_record(env: dict) -> dict:
    """What the fake engine saw: ``{"argv": [...], "env": {...}, "pid": N}``."""
    return json.loads(Path(env["FAKE_ENGINE_RECORD"]).read_text())


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value after ``flag`` in ``argv``, or ``None``."""
    return argv[argv.index(flag) + 1] if flag in argv else None


def snapshot(hf_home: Path, repo_id: str, sha: str) -> Path:
    """Where huggingface_hub keeps ``repo_id`` at commit ``sha`` under ``HF_HOME``."""
    return hf_home / "hub" / ("models--" + repo_id.replace("/", "--")) / "snapshots" / sha


class Running:
    """A launcher started in the background, its output going to files (read any time).

    ``prefix``: words before the interpreter (``unshare ...``: another PID namespace).

    Attributes:
        process: the ``subprocess.Popen``. started: ``time.monotonic()`` at the start.
    """

    def __init__(
        self, env: dict, args=(), name: str = "launcher", python: str | None = None, prefix=()
    ):
        import tempfile
        import time

        folder = Path(env.get("HOME") or tempfile.mkdtemp())
        folder.mkdir(parents=True, exist_ok=True)
        self.out_path = folder / f"{name}.stdout"
        self.err_path = folder / f"{name}.stderr"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [*prefix, python or sys.executable, "-m", "entrypoint", *args],
                env=env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=err,
            )
        self.started = time.monotonic()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    def wait(self, timeout: float = 120) -> int:
        """The exit status; kills the process (and fails) when it runs past ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after {timeout} s:\n{self.stderr}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_until(predicate, timeout: float = 30.0, every: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (no fixed sleeps)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def partial_files(hf_home: Path) -> list[Path]:
    """Every ``*.incomplete`` file under ``hf_home``."""
    return sorted(hf_home.rglob("*.incomplete"))


def partial_size(hf_home: Path, digest: str) -> int:
    """The bytes of the partial blob ``digest`` (a sha256) holds; 0 when there is none."""
    for path in partial_files(hf_home):
        if path.name.startswith(digest):
            try:
                return path.stat().st_size
            except FileNotFoundError:  # finished (renamed) meanwhile
                return 0
    return 0


def blob_dir(hf_home: Path, repo_id: str = CHECKPOINT) -> Path:
    return hf_home / "hub" / ("models--" + repo_id.replace("/", "--")) / "blobs"
