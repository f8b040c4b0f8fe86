#!/usr/bin/env python3
"""Build, verify, tag and push the LongCat-Flash engine images.

Every engine, version, base image, CUDA variant and tag template comes from
``images/matrix.toml``. Commands (``python build.py COMMAND --help`` for each)::

    python build.py plan  [ENGINE ...]   what would be built, from which base, with which
                                         tags (reads files only: no Docker daemon needed)
    python build.py list  [ENGINE ...]   the same as plan
    python build.py build [ENGINE ...]   build, verify inside the image, then tag
    python build.py push  [ENGINE ...]   push the tags of images built before

Options shared by all commands::

    --cuda=VARIANT|all      CUDA variant(s) (default: each engine's first, its default)
    --base-image=IMAGE      build FROM this image instead of the official base
    --registry=HOST[:PORT]  prefix the repository, e.g. 127.0.0.1:5000
    --repository=NAME       image repository (default: [tags].repository)
    --tag=TAG               extra tag, may hold {engine} {version} {cuda} (repeatable as
                            a list: --tag='[a,b]')
    --revision=REV          the revision tag's value instead of the git one
    build only: --no-cache, --push (push once verified and tagged)
    plan only:  --format=json

A build is tagged only after ``python3 -m entrypoint check --all`` ran inside the new image
and the engine's own parser accepted every standard plan; a rejected flag fails the build
and is named. Exit statuses: 0 done, 1 build/verify/push failed, 2 bad arguments, 130
interrupted.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Seconds: a Docker API call (one read of a build's output stream included) and the
# in-image verification (importing a real engine's parser takes tens of seconds).
DOCKER_TIMEOUT_S = 900
VERIFY_TIMEOUT_S = 900
# Options that fire would otherwise turn into numbers (``--tag=1.0``, ``--revision=0123``).
STRING_OPTIONS = ("tag", "base_image", "registry", "repository", "revision", "cuda",
                  "format", "cache_dir")
# The label namespace of our own labels (the rest are OCI's).
LABEL_PREFIX = "dev.longcat-deploy"


class BuildError(Exception):
    """A failure that build.py reports as one message and an exit status, no traceback.

    Attributes:
        exit_status (int): 1 for a failed build, verification or push; 2 for bad input.
    """

    def __init__(self, message: str, exit_status: int = 1):
        super().__init__(message)
        self.exit_status = exit_status


class UsageError(BuildError):
    """Bad arguments or a bad matrix: exit status 2."""

    def __init__(self, message: str):
        super().__init__(message, exit_status=2)


# --------------------------------------------------------------------------------------
# The matrix and the plan
# --------------------------------------------------------------------------------------

@dataclass
class Target:
    """One image to build: an engine at its pinned version, on one CUDA variant.

    Attributes:
        engine: ``"sglang"`` or ``"vllm"``.
        version: the engine's pinned version (matrix ``[engines.<engine>].version``).
        cuda: the CUDA variant, e.g. ``"cu130"``.
        default: True for the engine's default (first) variant: it gets the moving tag.
        base_image: what the Dockerfile builds FROM (``repo:tag[@digest]`` or an override).
        base_digest: the official base's digest, ``""`` when unknown or overridden.
        official_base: the official base image named by the matrix (tag and digest).
        dockerfile: the Dockerfile, relative to the project root.
        min_driver: the minimum NVIDIA driver for the CUDA variant.
        tags: every ``repository:tag`` the image gets once verified.
        build_args: the Dockerfile ARGs.
    """

    engine: str
    version: str
    cuda: str
    default: bool
    base_image: str
    base_digest: str
    official_base: str
    dockerfile: str
    min_driver: str
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        """The labels the Dockerfile sets from ``build_args`` (for display and tests)."""
        a = self.build_args
        return {
            "org.opencontainers.image.source": a["VCS_URL"],
            "org.opencontainers.image.revision": a["VCS_REF"],
            "org.opencontainers.image.version": a["IMAGE_VERSION"],
            "org.opencontainers.image.created": a["BUILD_DATE"],
            "org.opencontainers.image.base.name": a["BASE_IMAGE"],
            "org.opencontainers.image.base.digest": a["BASE_DIGEST"],
            f"{LABEL_PREFIX}.engine": self.engine,
            f"{LABEL_PREFIX}.engine.version": a["ENGINE_VERSION"],
            f"{LABEL_PREFIX}.cuda": a["CUDA_VARIANT"],
        }


def load_matrix(root: Path = ROOT) -> dict:
    """Read and check ``images/matrix.toml``.

    Returns:
        The parsed matrix.

    Raises:
        UsageError: the file is missing, is not TOML, or lacks a required key.
    """
    path = root / "images" / "matrix.toml"
    try:
        with open(path, "rb") as f:
            matrix = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read the build matrix {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    try:
        for name, spec in matrix["engines"].items():
            for key in ("version", "repository", "dockerfile", "variants"):
                spec[key]
            if not spec["variants"]:
                raise KeyError(f"engines.{name}.variants")
            for variant in spec["variants"]:
                variant["cuda"], variant["base_tag"]
                matrix["cuda"][variant["cuda"]]["min_driver"]
        for key in ("repository", "full", "moving", "moving_cuda", "revision"):
            matrix["tags"][key]
        for key in ("version", "wheel", "sha256", "binary"):
            matrix["init"][key]
        matrix["image"]["base_provides"]
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{path} lacks a required key: {exc}") from None
    return matrix


def project_metadata(root: Path = ROOT) -> dict:
    """Return pyproject.toml's ``[project]`` table (name, version, dependencies).

    Raises:
        UsageError: pyproject.toml is missing or invalid.
    """
    try:
        with open(root / "pyproject.toml", "rb") as f:
            return tomllib.load(f)["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise UsageError(f"cannot read [project] from {root / 'pyproject.toml'}: {exc}") from None


def _git(root: Path, *args: str) -> str | None:
    """Run ``git -C root ARGS``; return its stripped stdout, or None when git fails."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision(root: Path = ROOT) -> str | None:
    """Return ``g<12 hex>`` for HEAD, with ``-dirty`` when tracked files are modified.

    Returns:
        None when ``root`` is not a git checkout (or git is missing).
    """
    head = _git(root, "rev-parse", "--short=12", "HEAD")
    if not head:
        return None
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return f"g{head}" + ("-dirty" if dirty else "")


def source_url(root: Path = ROOT) -> str:
    """The repository URL for the OCI ``source`` label: git's ``origin``, or ``unknown``."""
    return _git(root, "remote", "get-url", "origin") or "unknown"


_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?")
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                         r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def _as_list(value, what: str) -> list[str]:
    """Accept one string or a list of strings from the command line."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{what} must be text, got {item!r}")
    return items


def select_targets(matrix: dict, engines, cuda: str | None) -> list[tuple[str, dict, bool]]:
    """Pick (engine, variant, is_default) for ``engines`` (all when empty) and ``cuda``.

    Raises:
        UsageError: an unknown engine, or a CUDA variant an engine named does not have.
    """
    known = list(matrix["engines"])
    names = _as_list(list(engines), "ENGINE")
    for name in names:
        if name not in known:
            raise UsageError(f"unknown engine {name!r}; known: {', '.join(known)}")
    chosen = []
    for name in names or known:
        variants = matrix["engines"][name]["variants"]
        offered = [v["cuda"] for v in variants]
        if cuda in (None, ""):
            picked = variants[:1]
        elif cuda == "all":
            picked = variants
        else:
            picked = [v for v in variants if v["cuda"] == cuda]
            if not picked:
                if names:
                    raise UsageError(f"{name} has no CUDA variant {cuda!r}; it has: "
                                     f"{', '.join(offered)} (or --cuda=all)")
                continue
        chosen += [(name, v, v is variants[0]) for v in picked]
    if not chosen:
        every = sorted({v["cuda"] for s in matrix["engines"].values() for v in s["variants"]})
        raise UsageError(f"no engine has a CUDA variant {cuda!r}; known: {', '.join(every)}")
    return chosen


def plan(matrix: dict, engines=(), *, cuda: str | None = None, base_image: str | None = None,
         registry: str | None = None, repository: str | None = None, tag=None,
         revision: str | None = None, root: Path = ROOT,
         created: str | None = None) -> list[Target]:
    """Work out every image to build, its base, build args and tags. Needs no daemon.

    Args:
        matrix: from ``load_matrix``.
        engines: engine names; empty means every engine in the matrix.
        cuda: a CUDA variant, ``"all"``, or None for each engine's default variant.
        base_image: build FROM this instead of the official base (the tests' stand-in).
        registry: ``HOST[:PORT]`` to prefix the repository with.
        repository: the image repository; default ``[tags].repository``.
        tag: extra tag(s), with optional ``{engine}``/``{version}``/``{cuda}`` fields.
        revision: the revision tag's value; default ``git_revision(root)``; no revision
            tag when neither exists.
        root: the project root (pyproject.toml, images/, .git).
        created: the ``created`` label (RFC 3339); default now, in UTC.

    Returns:
        One ``Target`` per image, in matrix order.

    Raises:
        UsageError: for any invalid argument, naming it and what is accepted.
    """
    if base_image is not None and (not isinstance(base_image, str) or not base_image.strip()
                                   or any(c.isspace() for c in base_image)):
        raise UsageError(f"--base-image must be an image reference, got {base_image!r}")
    if registry is not None and (not isinstance(registry, str)
                                 or not _REGISTRY.fullmatch(registry)):
        raise UsageError(f"--registry must be HOST or HOST:PORT (e.g. 127.0.0.1:5000), "
                         f"got {registry!r}")
    repository = matrix["tags"]["repository"] if repository is None else repository
    if not isinstance(repository, str) or not _REPOSITORY.fullmatch(repository):
        raise UsageError(f"--repository must be a lowercase image name such as "
                         f"longcat-deploy or team/longcat, got {repository!r}")
    if revision is not None and (not isinstance(revision, str) or not _TAG.fullmatch(revision)):
        raise UsageError(f"--revision must be usable in a tag ([A-Za-z0-9_.-], at most 128), "
                         f"got {revision!r}")
    extra = _as_list(tag, "--tag")
    selected = select_targets(matrix, engines, cuda)
    if len(selected) > 1:
        for t in extra:
            if not re.search(r"\{(engine|cuda)\}", t):
                raise UsageError(f"--tag {t!r} would name {len(selected)} images; put "
                                 "{engine} and/or {cuda} in it, or build one image")
    revision = git_revision(root) if revision is None else revision
    project = project_metadata(root)
    created = created or datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    image_repo = f"{registry}/{repository}" if registry else repository
    vcs_url = source_url(root)
    targets = []
    for name, variant, is_default in selected:
        spec = matrix["engines"][name]
        fields = {"engine": name, "version": spec["version"], "cuda": variant["cuda"],
                  "revision": revision or ""}
        official = f"{spec['repository']}:{variant['base_tag'].format(**fields)}"
        digest = variant.get("digest", "") or ""
        if digest:
            official += f"@{digest}"
        base = base_image or official
        templates = [matrix["tags"]["full"], matrix["tags"]["moving_cuda"]]
        if is_default:
            templates.append(matrix["tags"]["moving"])
        if revision:
            templates.append(matrix["tags"]["revision"])
        tags = []
        for template in templates + extra:
            try:
                value = template.format(**fields)
            except (KeyError, IndexError, ValueError) as exc:
                raise UsageError(f"tag template {template!r}: unknown field {exc}; use "
                                 "{engine} {version} {cuda} {revision}") from None
            if not _TAG.fullmatch(value):
                raise UsageError(f"tag {value!r} (from {template!r}) is not a valid tag: "
                                 "[A-Za-z0-9_.-], not starting with . or -, at most 128")
            if f"{image_repo}:{value}" not in tags:
                tags.append(f"{image_repo}:{value}")
        targets.append(Target(
            engine=name, version=spec["version"], cuda=variant["cuda"], default=is_default,
            base_image=base, base_digest="" if base_image else digest,
            official_base=official, dockerfile=spec["dockerfile"],
            min_driver=matrix["cuda"][variant["cuda"]]["min_driver"], tags=tags,
            build_args={
                "BASE_IMAGE": base,
                "BASE_DIGEST": "" if base_image else digest,
                "ENGINE_VERSION": spec["version"],
                "CUDA_VARIANT": variant["cuda"],
                "IMAGE_VERSION": str(project["version"]),
                "VCS_REF": revision or "unknown",
                "VCS_URL": vcs_url,
                "BUILD_DATE": created,
            }))
    return targets


def format_plan(targets: list[Target], matrix: dict) -> str:
    """Render ``targets`` for a human: one block per image."""
    lines = []
    for t in targets:
        cuda = matrix["cuda"][t.cuda]
        compat = cuda.get("min_driver_compat")
        driver = f"driver >= {t.min_driver}" + (
            f" (>= {compat} with CUDA minor-version compatibility)" if compat else "")
        lines.append(f"{t.engine} {t.version}, {t.cuda} (CUDA {cuda.get('toolkit', '?')}, "
                     f"{driver}){', default variant' if t.default else ''}")
        lines.append(f"  dockerfile  {t.dockerfile}")
        if t.base_image == t.official_base:
            pin = "" if t.base_digest else "   (digest unknown: pinned by tag only)"
            lines.append(f"  base        {t.base_image}{pin}")
        else:
            lines.append(f"  base        {t.base_image}   (override; official: {t.official_base})")
        for i, name in enumerate(t.tags):
            lines.append(f"  {'tags' if i == 0 else '':<11} {name}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


# --------------------------------------------------------------------------------------
# The build context: Dockerfile, dumb-init, dependency wheels, our wheel
# --------------------------------------------------------------------------------------

def build_cache_dir(override: str | None = None) -> Path:
    """Where downloaded and built wheels are kept between builds.

    ``override``, else ``$LONGCAT_BUILD_CACHE``, else ``~/.cache/longcat-deploy/build``.
    """
    if override:
        return Path(override)
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
        "longcat-deploy" / "build"
    return Path(os.environ.get("LONGCAT_BUILD_CACHE", default))


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    """Run ``argv``; on failure raise BuildError with ``what`` and the output's tail."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                              env=dict(os.environ, SOURCE_DATE_EPOCH="1580601600"))
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
            matrix["image"].get("platform", "linux/amd64"), "x86_64")
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--only-binary=:all:", "--platform", platform, "--dest", str(wheel.parent),
              f"{init.get('name', 'dumb-init')}=={init['version']}"], "downloading dumb-init")
        if not wheel.exists():
            raise BuildError(f"pip did not download {init['wheel']} into {wheel.parent}")
    data = wheel.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != init["sha256"]:
        raise BuildError(f"{wheel}: sha256 {actual} differs from the pin {init['sha256']} "
                         "in images/matrix.toml; delete the file to download it again")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read(init["binary"])


def _distribution_name(requirement: str) -> str:
    """The PEP 503 normalised distribution name of a PEP 508 requirement."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise UsageError(f"cannot read the requirement {requirement!r} in pyproject.toml")
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def missing_dependencies(matrix: dict, root: Path = ROOT) -> list[str]:
    """Our runtime dependencies that the official bases do not ship (``base_provides``)."""
    provided = {_distribution_name(n) for n in matrix["image"]["base_provides"]}
    return [r for r in project_metadata(root).get("dependencies", [])
            if _distribution_name(r) not in provided]


def dependency_wheels(requirements: list[str], cache: Path) -> list[Path]:
    """Return one wheel per requirement (no dependencies of theirs), built once and cached.

    The cache key is the requirement text, so the same file (and so the same image layer)
    is reused until pyproject.toml changes.

    Raises:
        BuildError: pip cannot build or download a wheel.
    """
    wheels = []
    for requirement in requirements:
        key = hashlib.sha256(requirement.encode()).hexdigest()[:16]
        folder = cache / "deps" / key
        found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
        if not found:
            partial = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
            _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                  "--wheel-dir", str(partial), requirement], f"building a wheel for {requirement}")
            found = sorted(partial.glob("*.whl"))
            if len(found) != 1:
                raise BuildError(f"pip wheel {requirement} gave {len(found)} wheels, not 1")
            shutil.rmtree(folder, ignore_errors=True)
            folder.parent.mkdir(parents=True, exist_ok=True)
            partial.rename(folder)
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
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(out_dir), str(root)],
         "building the launcher wheel (needs the build extra: pip install '.[build]')")
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"building the launcher gave {len(wheels)} wheels in {out_dir}, not 1")
    return wheels[0]


def prepare_context(target: Target, context: Path, *, root: Path, init: bytes,
                    deps: list[Path], launcher: Path) -> Path:
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
        + "".join(p + "\n" for p in pins))
    (context / "launcher").mkdir(exist_ok=True)
    shutil.copyfile(launcher, context / "launcher" / launcher.name)
    return context


# --------------------------------------------------------------------------------------
# Docker: build, verify, tag, push
# --------------------------------------------------------------------------------------

def docker_client():
    """Connect to the Docker daemon named by the environment (``DOCKER_HOST``, socket).

    Raises:
        BuildError: the docker SDK is missing or no daemon answers.
    """
    try:
        import docker
    except ImportError:
        raise BuildError("the docker SDK is missing: pip install '.[build]'") from None
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT_S)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests' errors, ...
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise BuildError(f"cannot reach the Docker daemon at {where}: {exc}. Start it "
                         "(on our CI machines: bash .ci/setup-docker).") from None
    return client


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def stream_build(client, context: Path, target: Target, *, no_cache: bool = False,
                 out=sys.stdout) -> str:
    """Build ``context`` with the classic builder, streaming its output to ``out``.

    Nothing is tagged here. Builds and their RUN steps use host networking (our daemons run
    with ``--bridge=none``); no step needs the network.

    Returns:
        The new image's ID.

    Raises:
        BuildError: a step failed; the message names the step and holds its log.
    """
    step, instruction, step_log, image_id = "", "", [], None
    stream = client.api.build(path=str(context), dockerfile="Dockerfile",
                              buildargs=target.build_args, nocache=bool(no_cache), rm=True,
                              forcerm=True, pull=False, network_mode="host", decode=True)
    for chunk in stream:
        if "error" in chunk or "errorDetail" in chunk:
            message = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
            log = "".join(step_log).rstrip() or "(no output)"
            where = f"step {step}: {instruction}" if step else "before the first step"
            raise BuildError(f"building {target.engine} ({target.cuda}) failed at {where}\n"
                             f"--- output of that step ---\n{log}\n--- error ---\n"
                             f"{message.strip()}")
        text = chunk.get("stream")
        if text:
            out.write(text)
            out.flush()
            first = _STEP.match(text.strip())
            if first:
                step, instruction, step_log = f"{first[1]}/{first[2]}", first[3], []
            else:
                step_log.append(text)
                built = re.match(r"Successfully built ([0-9a-f]+)", text.strip())
                if built and image_id is None:
                    image_id = built[1]
        elif chunk.get("status"):
            out.write(chunk["status"] + "\n")
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = aux["ID"]
    if not image_id:
        raise BuildError(f"building {target.engine} ({target.cuda}): the daemon reported no "
                         "image ID and no error")
    return image_id


# Run with the image's python3: are our own dependencies installed, and which engine
# version does the base hold? Prints one JSON object.
_PROBE = r"""
import json, re, sys
import importlib.metadata as md
engine = sys.argv[1]
problems = []
try:
    from packaging.requirements import Requirement
except ImportError:
    Requirement = None
try:
    requirements = md.requires("longcat-deploy") or []
except md.PackageNotFoundError:
    requirements = []
    problems.append("longcat-deploy is not installed for this python3")
for text in requirements:
    if Requirement is None:
        if "extra ==" in text:
            continue
        name, spec = re.match(r"[A-Za-z0-9._-]+", text)[0], None
    else:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name, spec = req.name, req.specifier
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        problems.append(f"{name} is not installed (longcat-deploy needs {text})")
        continue
    if spec is not None and not spec.contains(have, prereleases=True):
        problems.append(f"{name} {have} is installed; longcat-deploy needs {text}")
try:
    engine_version = md.version(engine)
except md.PackageNotFoundError:
    engine_version = None
print(json.dumps({"problems": problems, "engine_version": engine_version}))
"""


def _run_in_image(client, image_id: str, *, command: list[str],
                  entrypoint: list[str] | None = None, timeout_s: float = VERIFY_TIMEOUT_S
                  ) -> tuple[int, str]:
    """Run a container of ``image_id`` to completion; return (exit status, output).

    The container uses host networking, is labelled ``dev.longcat-deploy.build-check`` and
    is always removed.

    Raises:
        BuildError: it did not finish within ``timeout_s`` seconds.
    """
    kwargs = {"entrypoint": entrypoint} if entrypoint is not None else {}
    container = client.containers.run(image_id, command=command, detach=True,
                                      network_mode="host",
                                      labels={f"{LABEL_PREFIX}.build-check": "1"}, **kwargs)
    try:
        try:
            status = container.wait(timeout=timeout_s)["StatusCode"]
        except Exception as exc:  # requests' ReadTimeout/ConnectionError
            raise BuildError(f"{shlex.join((entrypoint or []) + command)} in {image_id[:19]} "
                             f"did not finish within {timeout_s:.0f} s: {exc}") from None
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return status, output
    finally:
        container.remove(force=True)


def public_version(version: str | None) -> str | None:
    """``version`` without its local label (PEP 440): ``1.2.3+cu129`` -> ``1.2.3``.

    vLLM's wheels for a non-default CUDA variant, and its CPU builds, carry one
    (engine-notes.md, "Versions"); the release they are is the public part.
    """
    return version.split("+", 1)[0] if version else version


def verify_image(client, image_id: str, target: Target, out=sys.stdout) -> None:
    """Check the new image before it is tagged.

    1. Our package and every dependency it declares are installed for ``python3``, and the
       base holds the engine at the pinned version (its public part: ``public_version``).
    2. ``python3 -m entrypoint check --all``, through the image's own ENTRYPOINT: the
       engine's real parser accepts every standard plan.

    Raises:
        BuildError: naming each missing dependency, a version mismatch, or each flag the
            engine rejected (with the check's report).
    """
    status, output = _run_in_image(client, image_id, entrypoint=["python3", "-c", _PROBE],
                                   command=[target.engine])
    try:
        probe = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BuildError(f"verifying {target.engine}: the dependency probe failed "
                         f"(exit {status}):\n{output.strip()}") from None
    if probe["problems"]:
        raise BuildError(f"verifying {target.engine}: the image lacks what the launcher "
                         "needs:\n  " + "\n  ".join(probe["problems"]))
    if public_version(probe["engine_version"]) != target.version:
        raise BuildError(f"verifying {target.engine}: the base {target.base_image} holds "
                         f"{target.engine} {probe['engine_version']}, but images/matrix.toml "
                         f"pins {target.version}")
    out.write(f"verify: {target.engine} {target.version} and the launcher's dependencies "
              "are installed\n")
    status, output = _run_in_image(client, image_id, command=["check", "--all"])
    out.write(output if output.endswith("\n") else output + "\n")
    if status != 0:
        rejected = [line.strip()[len("rejected "):] for line in output.splitlines()
                    if line.strip().startswith("rejected ")]
        detail = ("the engine rejected:\n  " + "\n  ".join(rejected)) if rejected else \
            f"the check exited with status {status}:\n{output.strip()}"
        raise BuildError(f"verifying {target.engine} ({target.cuda}): `python3 -m entrypoint "
                         f"check --all` failed inside the image, so it was not tagged; "
                         f"{detail}")


def tag_image(client, image_id: str, tags: list[str]) -> None:
    """Give ``image_id`` every ``repository:tag`` in ``tags``.

    Raises:
        BuildError: the daemon refused a tag.
    """
    for name in tags:
        repository, _, tag = name.rpartition(":")
        if not client.api.tag(image_id, repository, tag, force=True):
            raise BuildError(f"the daemon refused to tag {image_id[:19]} as {name}")


def push_tags(client, tags: list[str], out=sys.stdout) -> dict[str, str]:
    """Push each tag; return {tag: the registry's manifest digest}.

    Raises:
        BuildError: a tag is not there locally, or the registry refused a push.
    """
    import docker.errors

    digests = {}
    for name in tags:
        repository, _, tag = name.rpartition(":")
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            raise BuildError(f"cannot push {name}: there is no such image here; build it "
                             "first (python build.py build ...), or pass the --revision and "
                             "--tag it was built with") from None
        out.write(f"push: {name}\n")
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise BuildError(f"pushing {name} failed: {message.strip()}")
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digests[name] = aux["Digest"]
        if name not in digests:
            raise BuildError(f"pushing {name}: the registry reported no digest")
        out.write(f"push: {name}@{digests[name]}\n")
    return digests


def added_layers_size(client, image_id: str, base_image: str) -> int:
    """Bytes that ``image_id`` adds on top of ``base_image``: the sum of its own layers.

    The image's history (newest first) holds the base's history at its end; what comes
    before is ours. Counting entries works whether or not the layers were built here.

    Raises:
        docker.errors.ImageNotFound: either image is missing.
    """
    history = client.api.history(image_id)
    base = client.api.history(base_image)
    ours = history[:len(history) - len(base)]
    return sum(entry.get("Size", 0) for entry in ours)


def build_targets(targets: list[Target], *, client=None, root: Path = ROOT,
                  no_cache: bool = False, push: bool = False, cache: Path | None = None,
                  matrix: dict | None = None, out=sys.stdout) -> dict[str, dict]:
    """Build, verify and tag each target; push too when ``push``.

    Returns:
        {tag of each image's first tag: {"id": image ID, "tags": [...], "digests": {...}}}.

    Raises:
        BuildError: the first failure, with the failing step's log or the rejected flags.
            Images already verified keep their tags.
    """
    matrix = load_matrix(root) if matrix is None else matrix
    client = docker_client() if client is None else client
    cache = build_cache_dir() if cache is None else cache
    cache.mkdir(parents=True, exist_ok=True)
    init = init_binary(matrix, cache)
    deps = dependency_wheels(missing_dependencies(matrix, root), cache)
    results = {}
    with tempfile.TemporaryDirectory(prefix="longcat-build.") as tmp:
        launcher = launcher_wheel(root, Path(tmp) / "dist")
        for target in targets:
            out.write(f"=== build {target.engine} {target.version} {target.cuda} "
                      f"FROM {target.base_image}\n")
            context = prepare_context(target, Path(tmp) / f"{target.engine}-{target.cuda}",
                                      root=root, init=init, deps=deps, launcher=launcher)
            image_id = stream_build(client, context, target, no_cache=no_cache, out=out)
            try:
                verify_image(client, image_id, target, out=out)
            except BuildError:
                _discard_untagged(client, image_id)
                raise
            tag_image(client, image_id, target.tags)
            out.write(f"=== tagged {image_id[:19]}: {', '.join(target.tags)}\n")
            digests = push_tags(client, target.tags, out=out) if push else {}
            results[target.tags[0]] = {"id": image_id, "tags": list(target.tags),
                                       "digests": digests}
    return results


def _discard_untagged(client, image_id: str) -> None:
    """Remove a rejected image unless something else already tagged it."""
    try:
        if not client.images.get(image_id).tags:
            client.api.remove_image(image_id)
    except Exception:  # best effort: the image may be in use or already gone
        pass


# --------------------------------------------------------------------------------------
# The command line (fire)
# --------------------------------------------------------------------------------------

def _options(cuda, base_image, registry, repository, tag, revision):
    return dict(cuda=cuda, base_image=base_image, registry=registry, repository=repository,
                tag=tag, revision=revision)


class Commands:
    """Build, verify, tag and push the LongCat-Flash engine images (images/matrix.toml)."""

    def plan(self, *engines, cuda=None, base_image=None, registry=None, repository=None,
             tag=None, revision=None, format="text"):
        """Print what would be built, from which base, with which tags. Needs no daemon.

        Args:
            engines: engine names (default: all in the matrix).
            cuda: a CUDA variant such as cu130, or "all" (default: each engine's default).
            base_image: build FROM this image instead of the official base.
            registry: HOST[:PORT] to prefix the repository with.
            repository: the image repository (default: [tags].repository).
            tag: extra tag(s); may hold {engine} {version} {cuda}.
            revision: the revision tag's value (default: from git).
            format: "text" or "json".
        """
        if format not in ("text", "json"):
            raise UsageError(f"--format must be text or json, got {format!r}")
        matrix = load_matrix()
        targets = plan(matrix, engines, **_options(cuda, base_image, registry, repository,
                                                   tag, revision))
        if format == "json":
            print(json.dumps([asdict(t) | {"labels": t.labels()} for t in targets], indent=2))
        else:
            print(format_plan(targets, matrix))

    list = plan

    def build(self, *engines, cuda=None, base_image=None, registry=None, repository=None,
              tag=None, revision=None, no_cache=False, push=False, cache_dir=None):
        """Build each image, verify it inside (the launcher's check --all), then tag it.

        Args:
            engines: engine names (default: all in the matrix).
            cuda: a CUDA variant such as cu130, or "all" (default: each engine's default).
            base_image: build FROM this image instead of the official base.
            registry: HOST[:PORT] to prefix the repository with.
            repository: the image repository (default: [tags].repository).
            tag: extra tag(s); may hold {engine} {version} {cuda}.
            revision: the revision tag's value (default: from git).
            no_cache: build every step again.
            push: push every tag once the image is verified and tagged.
            cache_dir: where wheels are cached (default: ~/.cache/longcat-deploy/build).
        """
        matrix = load_matrix()
        targets = plan(matrix, engines, **_options(cuda, base_image, registry, repository,
                                                   tag, revision))
        build_targets(targets, matrix=matrix, no_cache=bool(no_cache), push=bool(push),
                      cache=build_cache_dir(cache_dir))

    def push(self, *engines, cuda=None, registry=None, repository=None, tag=None,
             revision=None):
        """Push the tags of images built before (same selection options as build).

        Args:
            engines: engine names (default: all in the matrix).
            cuda: a CUDA variant such as cu130, or "all".
            registry: HOST[:PORT] to prefix the repository with.
            repository: the image repository (default: [tags].repository).
            tag: extra tag(s) given at build time.
            revision: the revision tag's value (default: from git).
        """
        matrix = load_matrix()
        targets = plan(matrix, engines, **_options(cuda, None, registry, repository, tag,
                                                   revision))
        client = docker_client()
        for target in targets:
            push_tags(client, target.tags)


def protect_strings(argv: list[str]) -> list[str]:
    """Quote the values of ``STRING_OPTIONS`` and positional words so fire keeps them text.

    fire evaluates every value as a Python literal: ``--tag=1.0`` would become the float
    1.0 and ``--revision=0123`` a syntax error. ``repr`` of the text is a literal that
    evaluates back to exactly that text.
    """
    names = {f"--{n}" for n in STRING_OPTIONS} | {f"--{n.replace('_', '-')}"
                                                  for n in STRING_OPTIONS}
    protected, i = [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in names and eq:
            protected.append(f"{name}={value!r}" if not value.startswith("[") else arg)
        elif arg in names and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            nxt = argv[i + 1]
            protected += [arg, nxt if nxt.startswith("[") else repr(nxt)]
            i += 1
        elif i > 0 and not arg.startswith("-") and re.fullmatch(r"[0-9.eE+_-]+|None|True|False",
                                                                 arg):
            protected.append(repr(arg))   # a positional word that looks like a literal
        else:
            protected.append(arg)
        i += 1
    return protected


def check_options(argv: list[str]) -> None:
    """Refuse an option the command does not take, before fire runs anything.

    fire runs the command first and complains about arguments it could not use afterwards,
    so ``build --cdua=all`` would build everything before saying so.

    Raises:
        UsageError: naming the unknown option and the ones the command accepts.
    """
    import inspect

    words = argv[:argv.index("--")] if "--" in argv else argv
    command = next((w for w in words if not w.startswith("-")), None)
    method = getattr(Commands, command, None) if command else None
    if not callable(method):
        return  # fire reports an unknown command itself, before running anything
    accepted = [name for name, p in inspect.signature(method).parameters.items()
                if name != "self" and p.kind is not p.VAR_POSITIONAL]
    spellings = {f"--{n}" for n in accepted} | {f"--{n.replace('_', '-')}" for n in accepted}
    spellings |= {f"--no{n}" for n in accepted} | {"--help", "-h"}
    for word in words:
        name = word.split("=", 1)[0]
        if name.startswith("-") and name not in spellings:
            raise UsageError(f"{command} has no option {name}; it takes: "
                             + ", ".join(f"--{n.replace('_', '-')}" for n in accepted))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status. Errors print one message, no traceback."""
    try:
        import fire
    except ImportError:
        print("build.py: error: fire is missing: pip install '.[build]'", file=sys.stderr)
        return 2
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        check_options(args)
        fire.Fire(Commands(), command=protect_strings(args), name="build.py")
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except fire.core.FireExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:
        print("build.py: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the docker SDK's and requests' errors, OSError, ...
        print(f"build.py: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
