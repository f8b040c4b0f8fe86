"""Fixtures: a fake Hub on 127.0.0.1 serving a tiny LongCat-like repository, and the
interpreters the launcher runs under."""

from __future__ import annotations

import sys

import pytest

from tests.fakes.hub import FakeHub, FakeRepo, longcat_like_files
from tests.weights.support import CHECKPOINT


@pytest.fixture
def hub():
    """A running fake Hub (``hub.url``; ``hub.requests`` records every request)."""
    with FakeHub() as server:
        yield server


@pytest.fixture
def repo(hub) -> FakeRepo:
    """The FP8 checkpoint's id, served by ``hub`` with a tiny LongCat-like layout."""
    return hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(
    params=[
        "test-env",
        pytest.param("sglang", marks=pytest.mark.engines),
        pytest.param("vllm", marks=pytest.mark.engines),
    ]
)
def launcher_python(request) -> str:
    """The interpreter a launcher subprocess runs under, so the weights behaviour is proven
    on each huggingface_hub release it meets (docs/engines.md, "huggingface_hub"):

    - ``test-env``: this test run's (the newest release pyproject.toml admits);
    - ``sglang``, ``vllm``: the pinned engines' environments (tests/engine_venvs.py), with
      the release each engine's image ships (1.33 with SGLang, 2.x with vLLM). The launcher
      is imported from the checkout (``python -m entrypoint`` in the repository root).
    """
    if request.param == "test-env":
        return sys.executable
    from tests.engine_venvs import venv_python

    python = venv_python(request.param)
    if not python.exists():
        pytest.fail(
            f"no {request.param} environment at {python}: run "
            "`python -m tests.engine_venvs` (.ci/setup does)",
            pytrace=False,
        )
    return str(python)
