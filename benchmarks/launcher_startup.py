"""Launcher start-up cost: process start until the exec of an engine that exits at once.

Runs, interleaved, ``python3 -c pass`` and ``python3 -m entrypoint`` (ENGINE=vllm, with a
``vllm`` on PATH that is /bin/true, so the engine costs next to nothing), on the same
interpreter, and prints the medians and their ratio. Target: <= 1.5x.

The launcher is measured as a container start runs it: defaults everywhere except that
the checkpoint is a local directory (no Hub lookup) and, for the first configuration,
preflight is off (no GPUs here). The second configuration keeps the host checks on in
warn mode, so their cost shows too. The third sets LONGCAT_HF_SEED, as our images do, with
one folder to link into the cache (the first run links it, later runs find it there).

    python benchmarks/launcher_startup.py [--runs 30] [--python /usr/bin/python3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def elapsed(argv: list[str], env: dict) -> float:
    """Wall time of one run of ``argv``, in seconds; fails on a non-zero exit."""
    start = time.perf_counter()
    subprocess.run(
        argv, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per command (>= 20)")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter to measure (default: this one)"
    )
    options = parser.parse_args()
    runs, python = options.runs, options.python
    with tempfile.TemporaryDirectory() as tmp:
        bindir = Path(tmp) / "bin"
        bindir.mkdir()
        (bindir / "vllm").symlink_to("/bin/true")
        model = Path(tmp) / "checkpoint"
        model.mkdir()
        (model / "config.json").write_text("{}")
        env = {
            "PATH": f"{bindir}:{os.environ['PATH']}",
            "HOME": str(tmp),
            "ENGINE": "vllm",
            "MODEL": str(model),
        }
        seed = Path(tmp) / "seed"
        (seed / "hub" / "models--org--kernels" / "snapshots").mkdir(parents=True)
        commands = {
            "python3 -c pass": ([python, "-c", "pass"], env),
            "launcher, PREFLIGHT=off": ([python, "-m", "entrypoint"], dict(env, PREFLIGHT="off")),
            "launcher, PREFLIGHT=warn": ([python, "-m", "entrypoint"], dict(env, PREFLIGHT="warn")),
            "launcher, off, seed": (
                [python, "-m", "entrypoint"],
                dict(
                    env, PREFLIGHT="off", LONGCAT_HF_SEED=str(seed), HF_HOME=str(Path(tmp) / "hf")
                ),
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv, cmd_env in commands.values():  # warm the page cache
            elapsed(argv, cmd_env)
        for _ in range(runs):
            for name, (argv, cmd_env) in commands.items():
                times[name].append(elapsed(argv, cmd_env))
    base = statistics.median(times["python3 -c pass"])
    print(f"interpreter: {python}, {runs} runs each, interleaved")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<26} median {median * 1000:8.1f} ms   ratio {median / base:5.2f}x")
    print("target: launcher / python3 -c pass <= 1.5x")


if __name__ == "__main__":
    main()
