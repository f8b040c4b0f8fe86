"""Time to healthy on the real engine, and the launcher's share of it.

Starts the tiny LongCat-Flash with the real vLLM (CPU build) through our launcher, as
``tests/real_engine`` does, several times in a row, and for each start measures:

- launcher: process start until the launcher prints its exec line (``longcat-deploy:
  exec ...``), i.e. settings, plan, host checks (``PREFLIGHT=warn``) and argv;
- healthy: process start until ``GET /health`` answers 200;
- the launcher's share: launcher / healthy.

Each start is followed by one chat request (checked against transformers' reference) and
a SIGTERM stop, also timed. The runs are interleaved with nothing else, so on a shared
machine compare the ratio, not the seconds. Needs ``python -m tests.real_engine.env``.

    .venv/bin/python -m benchmarks.real_engine_startup [--runs 3] [--nodes 1|2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path


def one_run(python: Path, model: Path, reference: dict, nodes: int, folder: Path) -> dict:
    """Start ``nodes`` nodes, wait for node 0's health, ask, stop; return the timings (s)."""
    from tests.images.dockerutil import free_port
    from tests.real_engine import server

    ports = sorted({free_port() for _ in range(6)})[:3]
    started = []
    try:
        for rank in range(nodes):
            env = server.engine_environment(python.parent)
            env.update(
                server.launcher_variables(
                    model, ports[rank], nnodes=nodes, node_rank=rank, master_port=ports[2]
                )
            )
            started.append(
                server.start_node(f"node {rank}", env, ports[rank], folder / f"node{rank}.log")
            )
        launcher = [server.wait_exec(node) for node in started]
        healthy = server.wait_healthy(started[0])
        status, response = server.ask(started[0].port, reference)
        problems = (
            server.answer_problems(response, reference)
            if status == 200
            else [f"status {status}: {response}"]
        )
        if problems:
            raise RuntimeError("; ".join(problems))
        stops = [server.stop(node, server.DRAIN_STOP_WITHIN_S) for node in reversed(started)]
        return {
            "launcher": launcher[0],
            "launcher_max": max(launcher),
            "healthy": healthy,
            "stop": max(s if s is not None else float("inf") for s in stops),
        }
    finally:
        for node in started:
            server.kill(node)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="starts to measure (default 3)")
    parser.add_argument(
        "--nodes",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: one node; 2: the two-node plan on this host",
    )
    options = parser.parse_args(argv)
    from tests.real_engine.checkpoint import checkpoint_dir, load_reference
    from tests.real_engine.env import ready_python

    python = ready_python()
    if python is None or not (checkpoint_dir() / "reference.json").exists():
        print(
            "the real-engine environment is missing: run "
            "`.venv/bin/python -m tests.real_engine.env`",
            file=sys.stderr,
        )
        return 1
    model, reference = checkpoint_dir() / "model", load_reference(checkpoint_dir())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(options.runs):
            folder = Path(tmp) / f"run{run}"
            folder.mkdir()
            row = one_run(python, model, reference, options.nodes, folder)
            rows.append(row)
            print(
                f"run {run + 1}: launcher {row['launcher']:.2f} s, healthy "
                f"{row['healthy']:.1f} s, share {row['launcher'] / row['healthy']:.1%}, "
                f"stopped {row['stop']:.1f} s after SIGTERM",
                flush=True,
            )
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"\n{options.nodes} node(s), median of {len(rows)} starts:")
    print(f"  launcher (start to exec)      {median['launcher']:8.2f} s")
    print(f"  time to healthy (/health 200) {median['healthy']:8.1f} s")
    print(f"  launcher's share              {median['launcher'] / median['healthy']:8.1%}")
    print(f"  stop after SIGTERM            {median['stop']:8.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
