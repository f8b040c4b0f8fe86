"""Run the shipped single-node compose file on a machine without GPUs, with fake engines.

For a newcomer who wants to see the deployment work before a GPU node is at hand (and for
the README): it builds our images with the shipped build.py from the stand-in base plus
the tests' fake engines, then brings ``compose/single-node.yaml`` up with the test-only
override (no GPU reservation), and prints every docker command it runs.

    bash .ci/setup-docker                        # Docker engine, compose, stand-in base
    python3 -m tests.compose.demo up sglang      # or vllm; then curl the printed address
    python3 -m tests.compose.demo down

Needs the test extras (``pip install -e '.[test]'``). The images are tagged
``longcat-demo:<engine>`` and kept until ``python3 -m tests.compose.demo clean``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .composeutil import (
    OVERRIDE,
    ROOT,
    SINGLE,
    UP_TIMEOUT_S,
    compose_argv,
    override_env,
    probe_memlock,
    run_compose,
)

REPOSITORY = "longcat-demo"
PROJECT = "longcat-demo"
STATE = Path("/tmp/longcat-demo")
TOKEN = "demo"
ENGINES = ("sglang", "vllm")
DEFAULT_PORT = {"sglang": 30000, "vllm": 8000}


def _client():
    import docker

    return docker.from_env(timeout=600)


def build(engine: str) -> str:
    """Build ``longcat-demo:<engine>`` (fake engine inside) with build.py; return the tag."""
    from images.matrix import load_matrix
    from tests.conftest import build_with_buildpy
    from tests.fakes.bases import build_fake_base

    client = _client()
    matrix = load_matrix(ROOT)
    base = build_fake_base(client, matrix, engine, f"{REPOSITORY}-base:{engine}")
    print(
        f"demo: building {REPOSITORY}:{engine} with build.py FROM {base} "
        "(a stand-in laid out like the official base, plus a fake engine)",
        flush=True,
    )
    built = build_with_buildpy(client, matrix, engine, base, REPOSITORY)
    return f"{REPOSITORY}:{engine}" if f"{REPOSITORY}:{engine}" in built.tags else built.ref


def _env(engine: str) -> dict[str, str]:
    from tests.images.standin import image_name

    state = STATE / "fake-engine"
    state.mkdir(parents=True, exist_ok=True)
    return {
        "IMAGE_REPOSITORY": REPOSITORY,
        "ENGINE": engine,
        "HF_CACHE_DIR": str(STATE / "hf-cache"),
        **override_env(state, TOKEN, probe_memlock(_client(), image_name(), TOKEN)),
    }


def _run(env: dict[str, str], *args: str) -> int:
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    argv = compose_argv(
        [SINGLE.relative_to(ROOT), OVERRIDE.relative_to(ROOT)], *args, project=PROJECT
    )
    print(f"demo: {shown} {shlex.join(argv)}", flush=True)
    result = run_compose(
        [SINGLE, OVERRIDE], *args, env=env, project=PROJECT, check=False, timeout=UP_TIMEOUT_S
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def up(engine: str = "sglang") -> int:
    """Build the image when missing, then ``up --wait`` the single-node file."""
    import docker.errors

    if engine not in ENGINES:
        print(f"demo: ENGINE must be one of {', '.join(ENGINES)}, got {engine!r}", file=sys.stderr)
        return 2
    try:
        _client().images.get(f"{REPOSITORY}:{engine}")
    except docker.errors.ImageNotFound:
        build(engine)
    env = _env(engine)
    status = _run(env, "up", "--detach", "--wait", "--wait-timeout", "120")
    if status == 0:
        print(
            f"demo: healthy. Try: curl http://127.0.0.1:{DEFAULT_PORT[engine]}/v1/models\n"
            f"demo: stop it with: {sys.executable} -m tests.compose.demo down"
        )
    return status


def down() -> int:
    """``down -v`` the demo project (whichever engine it runs)."""
    return _run(_env("sglang"), "down", "--volumes", "--remove-orphans")


def clean() -> int:
    """Take the demo down, remove its images and its state folder."""
    import shutil

    from tests.images.dockerutil import remove_images

    status = down()
    client = _client()
    refs = [
        tag
        for image in client.images.list()
        for tag in image.tags
        if tag.split(":")[0] in (REPOSITORY, f"{REPOSITORY}-base")
    ]
    remove_images(client, refs)
    shutil.rmtree(STATE, ignore_errors=True)
    return status


def main(argv: list[str]) -> int:
    commands = {"up": up, "down": down, "clean": clean, "build": None}
    if (
        not argv
        or argv[0] not in commands
        or (argv[0] != "up" and argv[0] != "build" and len(argv) > 1)
        or len(argv) > 2
    ):
        print(
            "usage: python3 -m tests.compose.demo up [sglang|vllm] | down | clean | "
            "build [sglang|vllm]",
            file=sys.stderr,
        )
        return 2
    if argv[0] == "build":
        for engine in argv[1:] or ENGINES:
            print(build(engine))
        return 0
    return commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
