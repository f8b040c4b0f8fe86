"""The real engines' argument parsers, each in its own cached virtual environment.

The contract tests run ``python -m entrypoint check`` with the pinned SGLang and vLLM
(engine-notes.md, last section). Installing each takes minutes and about 10 GB, so the
environments live outside the checkout and are reused across runs:
``$LONGCAT_ENGINE_VENVS/<engine>-<version>`` (default ``~/.cache/longcat-deploy/venvs``).
The versions come from ``images/matrix.toml``, the one place they are pinned.

``python -m tests.engine_venvs`` creates whichever environment is missing (``.ci/setup``
runs it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MATRIX = REPO / "images" / "matrix.toml"


def pinned_versions() -> dict[str, str]:
    """Return {engine: pinned version} from images/matrix.toml."""
    with MATRIX.open("rb") as f:
        matrix = tomllib.load(f)
    return {name: spec["version"] for name, spec in matrix["engines"].items()}


def venvs_root() -> Path:
    """Where the engine environments are cached."""
    default = Path.home() / ".cache" / "longcat-deploy" / "venvs"
    return Path(os.environ.get("LONGCAT_ENGINE_VENVS", default))


def venv_python(engine: str) -> Path:
    """The interpreter of the pinned ``engine``'s environment (it may not exist yet)."""
    return venvs_root() / f"{engine}-{pinned_versions()[engine]}" / "bin" / "python"


def installed_version(python: Path, distribution: str) -> str | None:
    """The version of ``distribution`` installed for ``python``, or ``None``."""
    if not python.exists():
        return None
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))",
            distribution,
        ],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure(engine: str) -> Path:
    """Create the environment for ``engine`` unless it already holds the pinned version.

    Returns:
        Its interpreter.

    Raises:
        subprocess.CalledProcessError: pip failed.
    """
    version = pinned_versions()[engine]
    python = venv_python(engine)
    if installed_version(python, engine) == version:
        return python
    print(
        f"installing {engine}=={version} into {python.parent.parent} (several minutes)", flush=True
    )
    venv.create(python.parent.parent, with_pip=True, clear=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{engine}=={version}"], check=True
    )
    return python


if __name__ == "__main__":
    for name in sys.argv[1:] or pinned_versions():
        print(f"{name}: {ensure(name)}")
