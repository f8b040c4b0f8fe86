"""The build context: the Dockerfile, dumb-init, dependency wheels and our own wheel.

Everything the image build copies is made here, on the build machine, so that no build
step needs the network: dumb-init comes from a pinned wheel checked by hash, our
dependencies that the official bases lack are built into wheels once and cached, and our
launcher is built into a reproducible wheel from the checkout.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import BuildError, UsageError
from .matrix import Target, project_metadata

# Wheels record file times; a fixed epoch makes our launcher wheel, and so its image
# layer, the same bytes for the same sources (hatchling honours SOURCE_DATE_EPOCH).
SOURCE_DATE_EPOCH = "1580601600"


def build_cache_dir(override: str | None = None) -> Path:
    """Where downloaded and built wheels are kept between builds.

    ``override``, else ``$LONGCAT_BUILD_CACHE``, else ``$XDG_CACHE_HOME`` (default
    ``~/.cache``) ``/longcat-deploy/build``.
    """
    if override:
        return Path(override)
    default = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "longcat-deploy" / "build"
    )
    return Path(os.environ.get("LONGCAT_BUILD_CACHE", default))


def _pip_wheel(args: list[str], out_dir: Path, what: str) -> Path:
    """Run ``pip wheel --no-deps`` with ``args`` into the empty ``out_dir``; its one wheel.

    Raises:
        BuildError: pip failed, or it left other than one wheel in ``out_dir``.
    """
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir"]
    _run([*argv, str(out_dir), *args], what)
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"{what}: pip left {len(wheels)} wheels in {out_dir}, not 1")
    return wheels[0]


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    """Run ``argv``; on failure raise BuildError with ``what`` and the output's tail."""
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            env=dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH),
        )
    except OSError as exc:
        raise BuildError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{what} failed (exit {done.returncode}): {shlex.join(argv)}\n{tail}")


def init_binary(matrix: dict, cache: Path) -> bytes:
    """Return the dumb-init binary from the wheel pinned in ``[init]``, checked by sha256.

    The wheel is downloaded once with pip (PyPI) into ``cache`` and reused offline after.

    Raises:
        BuildError: pip cannot download it, or the wheel's hash differs from the pin.
    """
    init = matrix["init"]
    wheel = cache / "init" / init["wheel"]
    if not wheel.exists():
        wheel.parent.mkdir(parents=True, exist_ok=True)
        platform = "manylinux2014_" + {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}.get(
            matrix["image"].get("platform", "linux/amd64"), "x86_64"
        )
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                platform,
                "--dest",
                str(wheel.parent),
                f"{init.get('name', 'dumb-init')}=={init['version']}",
            ],
            "downloading dumb-init",
        )
        if not wheel.exists():
            raise BuildError(f"pip did not download {init['wheel']} into {wheel.parent}")
    data = wheel.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != init["sha256"]:
        raise BuildError(
            f"{wheel}: sha256 {actual} differs from the pin {init['sha256']} "
            "in images/matrix.toml; delete the file to download it again"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read(init["binary"])


def distribution_name(requirement: str) -> str:
    """The PEP 503 normalised distribution name of a PEP 508 requirement.

    Raises:
        UsageError: ``requirement`` does not start with a distribution name.
    """
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise UsageError(f"cannot read the requirement {requirement!r} in pyproject.toml")
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def missing_dependencies(matrix: dict, root: Path) -> list[str]:
    """Our runtime dependencies that the official bases do not ship (``base_provides``)."""
    provided = {distribution_name(n) for n in matrix["image"]["base_provides"]}
    return [
        r
        for r in project_metadata(root).get("dependencies", [])
        if distribution_name(r) not in provided
    ]


def dependency_wheels(requirements: list[str], cache: Path) -> list[Path]:
    """Return one wheel per requirement (no dependencies of theirs), built once and cached.

    The cache key is the requirement text, so the same file (and so the same image layer)
    is reused until pyproject.toml changes. A failed build leaves nothing in ``cache``.

    Raises:
        BuildError: pip cannot build or download a wheel.
    """
    wheels = []
    for requirement in requirements:
        key = hashlib.sha256(requirement.encode()).hexdigest()[:16]
        folder = cache / "deps" / key
        found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
        if not found:
            cache.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
            try:
                _pip_wheel([requirement], partial, f"building a wheel for {requirement}")
                shutil.rmtree(folder, ignore_errors=True)
                folder.parent.mkdir(parents=True, exist_ok=True)
                partial.rename(folder)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            found = sorted(folder.glob("*.whl"))
        wheels.append(found[0])
    return wheels


def _wheel_pin(wheel: Path) -> str:
    """``name==version`` from a wheel's file name (PEP 427)."""
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version}"


def launcher_wheel(root: Path, out_dir: Path) -> Path:
    """Build our package's wheel from ``root`` into ``out_dir`` (no network, no deps).

    Uses pip with the build backend already installed (``pip install '.[build]'``), so the
    wheel is reproducible: the same sources give the same bytes, and the same image layer.

    Raises:
        BuildError: the build backend is missing or the build failed.
    """
    return _pip_wheel(
        ["--no-build-isolation", str(root)],
        out_dir,
        "building the launcher wheel (needs the build extra: pip install '.[build]')",
    )


def prepare_context(
    target: Target, context: Path, *, root: Path, init: bytes, deps: list[Path], launcher: Path
) -> Path:
    """Lay out the build context for ``target`` in ``context`` and return it.

    Holds only what the Dockerfile copies: ``Dockerfile``, ``dumb-init`` (mode 0755),
    ``deps/`` (wheels and ``requirements.txt``) and ``launcher/`` (our wheel).
    """
    context.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / target.dockerfile, context / "Dockerfile")
    (context / "dumb-init").write_bytes(init)
    os.chmod(context / "dumb-init", 0o755)
    (context / "deps").mkdir(exist_ok=True)
    pins = []
    for wheel in deps:
        shutil.copyfile(wheel, context / "deps" / wheel.name)
        pins.append(_wheel_pin(wheel))
    (context / "deps" / "requirements.txt").write_text(
        "# written by build.py: our dependencies that the base image lacks\n"
        + "".join(p + "\n" for p in pins)
    )
    (context / "launcher").mkdir(exist_ok=True)
    shutil.copyfile(launcher, context / "launcher" / launcher.name)
    return context
