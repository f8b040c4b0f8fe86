"""Fake engines for the image tests, packaged as wheels.

The sources under ``site/`` are installed into a stand-in base as real distributions
(wheels made here, installed with the base's own pip; ``tests.fakes.bases``), so the
shipped Dockerfiles, build.py and the launcher see what they would see in the official
images: ``import sglang``, ``python3 -m sglang.launch_server``, a ``vllm`` console
command, and the engines' distribution versions (the pin from images/matrix.toml, with the
local version a real wheel of that CUDA variant carries).
"""

from __future__ import annotations

from pathlib import Path

from tests.wheels import make_wheel

SITE = Path(__file__).resolve().parent / "site"
RUNTIME_MODULES = ("_longcat_fake_engine.py", "_longcat_fake_options.py")


def _package_files(package: str) -> dict[str, bytes]:
    root = SITE / package
    return {
        p.relative_to(SITE).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def fake_wheels(engine: str, version: str, out_dir: Path) -> list[Path]:
    """Write the wheels of ``engine``'s fake (and the shared fake runtime) to ``out_dir``.

    Raises:
        ValueError: ``engine`` is neither ``"sglang"`` nor ``"vllm"``.
    """
    if engine not in ("sglang", "vllm"):
        raise ValueError(f"no fake for engine {engine!r}")
    runtime = {m: (SITE / m).read_bytes() for m in RUNTIME_MODULES}
    scripts = {"vllm": "vllm.entrypoints.cli.main:main"} if engine == "vllm" else None
    return [
        make_wheel(out_dir, "longcat-fake-engine-runtime", "1.0", runtime),
        make_wheel(out_dir, engine, version, _package_files(engine), scripts),
    ]
