"""Image cost: the size of the layers we add on top of the engine's base image (target:
<= 20 MB), and the time of a rebuild after a launcher-only change as a ratio to a
cold build of the same image, side by side, per engine.

Each run builds the image cold (``--no-cache``: every one of our steps again; the base is
already there), then changes one launcher file in a copy of the project and builds again
with the cache. Two timings for each build: the Docker build alone, and the whole
``build.py build`` (wheels, context, Docker build and the in-image ``check --all``).
Medians over ``--runs``. Everything it builds is removed afterwards.

By default the base is the tests' stand-in, laid out like the official one, with a fake
engine (tests/fakes/bases.py; ``.ci/setup-docker`` makes the minbase under it);
``--base-image`` measures on another base, e.g. the official one. Run from the project
root, as a module so it imports build.py's package (images/) and the test helpers::

    python -m benchmarks.image_size [--engine sglang --engine vllm] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from images.context import (
    build_cache_dir,
    dependency_wheels,
    init_binary,
    launcher_wheel,
    missing_dependencies,
    prepare_context,
)
from images.dockerbuild import added_layers_size, docker_client, stream_build
from images.errors import BuildError
from images.matrix import Options, Target, load_matrix, plan
from images.verify import verify_image
from tests.images.dockerutil import copy_project

ROOT = Path(__file__).resolve().parent.parent
TARGET_BYTES = 20 * 10**6


def timed_build(
    client, matrix: dict, target: Target, root: Path, cache: Path, work: Path, *, no_cache: bool
) -> tuple[str, float, float]:
    """Build and verify ``target`` from ``root`` as build.py does, without tagging.

    Returns:
        (image ID, seconds of the Docker build alone, seconds of the whole build.py build).
    """
    out = io.StringIO()
    started = time.perf_counter()
    init = init_binary(matrix, cache)
    deps = dependency_wheels(missing_dependencies(matrix, root), cache)
    shutil.rmtree(work, ignore_errors=True)
    launcher = launcher_wheel(root, work / "dist")
    context = prepare_context(
        target, work / "context", root=root, init=init, deps=deps, launcher=launcher
    )
    docker_started = time.perf_counter()
    image_id = stream_build(client, context, target, no_cache=no_cache, out=out)
    docker_s = time.perf_counter() - docker_started
    verify_image(client, image_id, target, out=out)
    return image_id, docker_s, time.perf_counter() - started


def fake_base(client, matrix: dict, engine: str) -> str:
    """Build the tests' fake base for ``engine`` on the stand-in; return its tag."""
    from tests.fakes.bases import build_fake_base
    from tests.images.standin import image_name

    client.images.get(image_name(ROOT))  # docker.errors.ImageNotFound: run .ci/setup-docker
    return build_fake_base(client, matrix, engine, f"longcat-bench-base:{engine}")


def measure(client, matrix: dict, engine: str, base: str, runs: int) -> dict:
    """Measure ``engine`` on ``base``; return sizes (bytes) and medians (seconds)."""
    (target,) = plan(
        matrix, [engine], Options(base_image=base, repository="longcat-bench", revision="bench")
    )
    cache = build_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    cold, rebuild, images = [], [], []
    with tempfile.TemporaryDirectory(prefix="longcat-bench.") as tmp:
        project = copy_project(ROOT, Path(tmp) / "project")
        launcher_file = project / "entrypoint" / "__init__.py"
        original = launcher_file.read_text()
        try:
            for run in range(runs):
                launcher_file.write_text(original)
                image, docker_s, total_s = timed_build(
                    client, matrix, target, project, cache, Path(tmp) / "work", no_cache=True
                )
                images.append(image)
                cold.append((docker_s, total_s))
                launcher_file.write_text(original + f"\n# launcher-only change {run}\n")
                image, docker_s, total_s = timed_build(
                    client, matrix, target, project, cache, Path(tmp) / "work", no_cache=False
                )
                images.append(image)
                rebuild.append((docker_s, total_s))
            added = added_layers_size(client, images[-1], base)
        finally:
            for image in reversed(images):
                try:
                    client.images.remove(image, force=True)
                except Exception:  # already gone, or shared: nothing of ours to keep
                    pass
    median = lambda values, i: statistics.median(v[i] for v in values)  # noqa: E731
    return {
        "engine": engine,
        "base": base,
        "runs": runs,
        "added_bytes": added,
        "target_bytes": TARGET_BYTES,
        "cold_docker_s": median(cold, 0),
        "rebuild_docker_s": median(rebuild, 0),
        "cold_total_s": median(cold, 1),
        "rebuild_total_s": median(rebuild, 1),
    }


def report(rows: list[dict]) -> str:
    """The side-by-side table."""
    header = (
        f"{'engine':<8} {'added layers':>13} {'<= 20 MB':>9} | "
        f"{'docker build: cold':>18} {'rebuild':>8} {'ratio':>6} | "
        f"{'build.py build: cold':>20} {'rebuild':>8} {'ratio':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['engine']:<8} {r['added_bytes'] / 1e6:>10.2f} MB "
            f"{'yes' if r['added_bytes'] <= r['target_bytes'] else 'NO':>9} | "
            f"{r['cold_docker_s']:>16.1f} s {r['rebuild_docker_s']:>6.1f} s "
            f"{r['rebuild_docker_s'] / r['cold_docker_s']:>6.2f} | "
            f"{r['cold_total_s']:>18.1f} s {r['rebuild_total_s']:>6.1f} s "
            f"{r['rebuild_total_s'] / r['cold_total_s']:>6.2f}"
        )
    lines.append(
        f"(medians of {rows[0]['runs']} run(s); base: "
        + ", ".join(f"{r['engine']}={r['base']}" for r in rows)
        + ")"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine",
        action="append",
        choices=["sglang", "vllm"],
        help="engine(s) to measure (default: both)",
    )
    parser.add_argument("--runs", type=int, default=3, help="cold+rebuild pairs (>= 1)")
    parser.add_argument(
        "--base-image",
        help="measure on this base instead of the stand-in "
        "with a fake engine (must hold the engine at the pinned version)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    matrix = load_matrix(ROOT)
    try:
        client = docker_client()
    except BuildError as exc:
        print(f"image_size: error: {exc}", file=sys.stderr)
        return 1
    rows, made = [], []
    try:
        for engine in args.engine or list(matrix["engines"]):
            base = args.base_image
            if base is None:
                base = fake_base(client, matrix, engine)
                made.append(base)
            rows.append(measure(client, matrix, engine, base, args.runs))
    except BuildError as exc:
        print(f"image_size: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for base in made:
            try:
                client.images.remove(base, force=True)
            except Exception:
                pass
    print(json.dumps(rows, indent=2) if args.json else report(rows))
    return 0 if all(r["added_bytes"] <= r["target_bytes"] for r in rows) else 3


if __name__ == "__main__":
    sys.exit(main())
