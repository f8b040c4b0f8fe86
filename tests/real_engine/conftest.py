"""Fixtures for the real-engine tests: the environment, the checkpoint and its reference.

A missing or stale environment fails these tests (never skips them): a real-engine test
that cannot run is a failing test. ``.ci/setup`` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

BUILD_HINT = "run `.venv/bin/python -m tests.real_engine.env` (.ci/setup runs it)"


@dataclass(frozen=True)
class RealEngine:
    """The built real-engine environment.

    Attributes:
        python: its interpreter.
        bin: its ``bin`` folder (``vllm`` is there).
        checkpoint: the tiny checkpoint's folder; ``model`` is what MODEL points at.
        reference: transformers' answer (``tests.real_engine.checkpoint.build``).
    """

    python: Path
    bin: Path
    checkpoint: Path
    model: Path
    reference: dict


@pytest.fixture(scope="session")
def real_engine() -> RealEngine:
    """The environment and the checkpoint; fails with how to build them when missing."""
    from tests.real_engine import env
    from tests.real_engine.checkpoint import checkpoint_dir, load_reference

    python = env.ready_python()
    if python is None:
        pytest.fail(
            f"the real-engine environment {env.venv_dir()} is missing or stale: {BUILD_HINT}",
            pytrace=False,
        )
    folder = checkpoint_dir()
    if not (folder / "reference.json").exists():
        pytest.fail(
            f"the tiny checkpoint {folder} is missing or stale: {BUILD_HINT}", pytrace=False
        )
    return RealEngine(
        python=python,
        bin=python.parent,
        checkpoint=folder,
        model=folder / "model",
        reference=load_reference(folder),
    )


@pytest.fixture(scope="session")
def real_base(docker_client) -> str:
    """The CPU stand-in base with the real engine, on the vLLM stand-in layout
    (tests/real_engine/image.py); fails with how to build it when missing."""
    import docker.errors

    from tests.real_engine.image import image_name, vllm_layout

    name = image_name(vllm_layout())
    try:
        docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"the CPU stand-in base with the real engine {name} is missing: run "
            "`.venv/bin/python -m tests.real_engine.image` (.ci/setup does)",
            pytrace=False,
        )
    return name


def real_matrix(matrix: dict) -> dict:
    """images/matrix.toml with vLLM pinned at the real engine's version: what the CPU base
    holds (build.py checks that the base holds the pinned release)."""
    import copy

    from tests.real_engine.env import real_engine_pin

    changed = copy.deepcopy(matrix)
    changed["engines"]["vllm"]["version"] = real_engine_pin()[1]
    return changed


@pytest.fixture(scope="session")
def real_image(docker_client, matrix, real_base, docker_token):
    """Our vLLM image built by the shipped build.py on the real-engine base, verified in the
    image with the real engine's parser (``check --all``); removed after the session."""
    from images.errors import BuildError
    from tests.conftest import build_with_buildpy
    from tests.images.dockerutil import remove_images

    try:
        image = build_with_buildpy(
            docker_client,
            real_matrix(matrix),
            "vllm",
            real_base,
            f"longcat-test-{docker_token}-real",
        )
    except BuildError as exc:
        pytest.fail(
            f"build.py could not build vllm on {real_base}: {exc}\n{getattr(exc, 'output', '')}",
            pytrace=False,
        )
    try:
        yield image
    finally:
        remove_images(docker_client, [*image.tags, image.id])
