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
        pytest.fail(f"the real-engine environment {env.venv_dir()} is missing or stale: "
                    f"{BUILD_HINT}", pytrace=False)
    folder = checkpoint_dir()
    if not (folder / "reference.json").exists():
        pytest.fail(f"the tiny checkpoint {folder} is missing or stale: {BUILD_HINT}",
                    pytrace=False)
    return RealEngine(python=python, bin=python.parent, checkpoint=folder,
                      model=folder / "model", reference=load_reference(folder))
