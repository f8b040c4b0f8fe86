"""Fake engines for the image tests, packaged as wheels.

The sources under ``site/`` are installed into a stand-in base as real distributions
(wheels made here, installed with the base's own pip; ``tests.fakes.bases``), so the
shipped Dockerfiles, build.py and the launcher see what they would see in the official
images: ``import sglang``, ``python3 -m sglang.launch_server``, a ``vllm`` console
command, and the engines' distribution versions (the pin from images/matrix.toml, with the
local version a real wheel of that CUDA variant carries).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

SITE = Path(__file__).resolve().parent / "site"
RUNTIME_MODULES = ("_longcat_fake_engine.py", "_longcat_fake_options.py")
# A fixed timestamp makes the wheels, and so the fake bases' layers, reproducible.
_ZIP_TIME = (2020, 2, 2, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def make_wheel(out_dir: Path, name: str, version: str, files: dict[str, bytes],
               console_scripts: dict[str, str] | None = None) -> Path:
    """Write a pure-Python wheel (PEP 427) holding ``files`` and return its path.

    Args:
        out_dir: where the wheel goes.
        name: the distribution name, e.g. ``"sglang"``.
        version: its version, e.g. the pinned engine version.
        files: archive path -> content, e.g. ``{"sglang/__init__.py": b"..."}``.
        console_scripts: command name -> ``module:function`` entry points.
    """
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    entries = dict(files)
    entries[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   "Summary: longcat-deploy test fake\n").encode()
    entries[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: longcat-deploy-tests\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    if console_scripts:
        lines = "".join(f"{k} = {v}\n" for k, v in sorted(console_scripts.items()))
        entries[f"{info}/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n"
                     for path, data in sorted(entries.items()))
    entries[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = Path(out_dir) / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, data in sorted(entries.items()):
            item = zipfile.ZipInfo(arcname, _ZIP_TIME)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(item, data)
    return path


def _package_files(package: str) -> dict[str, bytes]:
    root = SITE / package
    return {p.relative_to(SITE).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


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
