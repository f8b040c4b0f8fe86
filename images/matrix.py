"""The build matrix and the plan: which images to build, from which base, with which tags.

``images/matrix.toml`` is the one place that names engines, versions, official bases, CUDA
variants and the tag scheme. ``plan`` turns it and the command line's ``Options`` into one
``Target`` per image. Everything here reads files only: no Docker daemon.
"""

from __future__ import annotations

import datetime
import os
import re
import string
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError, UsageError, shown

ROOT = Path(__file__).resolve().parent.parent
MATRIX = Path("images") / "matrix.toml"
# The label namespace of our own labels (the rest are OCI's).
LABEL_PREFIX = "dev.longcat-deploy"


@dataclass(frozen=True)
class Options:
    """The options every build.py command takes, before or after the command's name.

    This class is their one definition: the command line's flags (``images.cli``), the
    help text and ``plan`` all come from it.

    Args:
        cuda: a CUDA variant such as cu130, or "all" (default: each engine's default variant).
        base_image: build FROM this image instead of the official base.
        registry: HOST[:PORT] to prefix the repository with, e.g. registry.example.com;
            it needs a '.' or a port, or is localhost (Docker reads others as Docker Hub).
        repository: the image repository (default: [tags].repository in images/matrix.toml).
        tag: extra tags; may hold {engine} {version} {cuda} {revision} (several: --tag='[a,b]').
        revision: the revision tag's value (default: from git).
    """

    cuda: str | None = None
    base_image: str | None = None
    registry: str | None = None
    repository: str | None = None
    tag: str | list[str] | None = None
    revision: str | None = None


@dataclass
class Target:
    """One image to build: an engine at its pinned version, on one CUDA variant.

    Attributes:
        engine: ``"sglang"`` or ``"vllm"``.
        version: the engine's pinned version (matrix ``[engines.<engine>].version``).
        cuda: the CUDA variant, e.g. ``"cu130"``.
        default: True for the engine's default (first) variant: it gets the moving tag.
        base_image: what the Dockerfile builds FROM (``repo:tag[@digest]`` or an override).
        base_digest: the official base's digest from the matrix; ``""`` when unknown or
            overridden (the build resolves the digest it actually used).
        official_base: the official base image named by the matrix (tag and digest).
        dockerfile: the Dockerfile, relative to the project root.
        min_driver: the minimum NVIDIA driver for the CUDA variant.
        tags: every ``repository:tag`` the image gets once verified.
        build_args: the Dockerfile ARGs.
        unconfirmed: why upstream's publication of this base is not confirmed (the
            variant's ``unconfirmed`` note), or ``""``.
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
    unconfirmed: str = ""

    def labels(self) -> dict[str, str]:
        """The labels the Dockerfile sets from ``build_args`` (for display and tests)."""
        a = self.build_args
        return {
            "org.opencontainers.image.url": a["VCS_URL"],
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


def _read_toml(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None


def load_matrix(root: Path = ROOT) -> dict:
    """Read and check ``images/matrix.toml``.

    Returns:
        The parsed matrix.

    Raises:
        UsageError: the file is missing, is not TOML, or lacks a required key.
    """
    path = root / MATRIX
    matrix = _read_toml(path, "the build matrix")
    try:
        for name, spec in matrix["engines"].items():
            for key in ("version", "repository", "dockerfile", "variants"):
                spec[key]
            if not spec["variants"]:
                raise KeyError(f"engines.{name}.variants")
            for variant in spec["variants"]:
                variant["cuda"], variant["base_tag"]
                matrix["cuda"][variant["cuda"]]["min_driver"]
            dict(spec.get("discontinued", {}))
        for key in ("repository", "full", "moving", "moving_cuda", "revision"):
            matrix["tags"][key]
        for key in ("version", "wheel", "sha256", "binary"):
            matrix["init"][key]
        matrix["image"]["base_provides"]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path} lacks a required key: {exc}") from None
    return matrix


def project_metadata(root: Path = ROOT) -> dict:
    """Return pyproject.toml's ``[project]`` table (name, version, dependencies).

    Raises:
        UsageError: pyproject.toml is missing or invalid.
    """
    try:
        return _read_toml(root / "pyproject.toml", "the project file")["project"]
    except KeyError:
        raise UsageError(f"{root / 'pyproject.toml'} has no [project] table") from None


def _git(root: Path, *args: str) -> str | None:
    """Run ``git -C root ARGS``; return its stripped stdout, or None when git fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
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
    """The repository URL for the OCI ``url`` and ``source`` labels: git's ``origin``
    without its user info, or ``unknown``.

    A CI clone's origin often carries a credential (GitLab CI's
    ``https://gitlab-ci-token:TOKEN@host/...``; a token in a GitHub URL): labels are part
    of the image's configuration, which every puller reads (``docker inspect``), so only
    the scheme, host, port and path go there (``without_user_info``).
    """
    url = _git(root, "remote", "get-url", "origin")
    return without_user_info(url) if url else "unknown"


def without_user_info(url: str) -> str:
    """``url`` without the user info of its authority (RFC 3986, section 3.2.1):
    ``https://user:TOKEN@host/path`` is ``https://host/path``, and scp-like git URLs
    (``git@host:org/repo``) drop ``git@``. Text that is neither is returned as it is."""
    if "@" not in url:
        return url
    scheme, separator, rest = url.partition("://")
    if separator:
        authority, slash, path = rest.partition("/")
        return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    head, colon, path = url.partition(":")  # git's scp-like syntax: [user@]host:path
    if colon and "/" not in head:
        return f"{head.rpartition('@')[2]}:{path}"
    return url


# Docker's reference grammar (distribution/reference, reference.go): a tag is
# [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; a repository path is lowercase components.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_REGISTRY = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::([0-9]{1,5}))?")
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)


def _as_list(value, what: str) -> list[str]:
    """Accept one string or a list of strings from the command line."""
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{what} must be text, got {shown(item)}")
    return items


def select_targets(matrix: dict, engines, cuda: str | None) -> list[tuple[str, dict, bool]]:
    """Pick (engine, variant, is_default) for ``engines`` (all when empty) and ``cuda``.

    An engine named twice is planned once.

    Raises:
        UsageError: an unknown engine, or a CUDA variant an engine named does not have
            (with the matrix's reason when upstream no longer publishes it).
    """
    known = list(matrix["engines"])
    names = list(dict.fromkeys(_as_list(list(engines), "ENGINE")))
    for name in names:
        if name not in known:
            raise UsageError(f"unknown engine {shown(name)}; known: {', '.join(known)}")
    chosen = []
    for name in names or known:
        spec = matrix["engines"][name]
        variants = spec["variants"]
        offered = ", ".join(v["cuda"] for v in variants)
        if cuda in (None, ""):
            picked = variants[:1]
        elif cuda == "all":
            picked = variants
        else:
            picked = [v for v in variants if v["cuda"] == cuda]
            if not picked and names:
                gone = spec.get("discontinued", {}).get(cuda)
                why = f"{spec['repository']} no longer publishes it: {gone}; " if gone else ""
                raise UsageError(
                    f"{name} has no CUDA variant {shown(cuda)} ({why}it has: {offered}, or --cuda=all)"
                )
        chosen += [(name, v, v is variants[0]) for v in picked]
    if not chosen:
        every = sorted({v["cuda"] for s in matrix["engines"].values() for v in s["variants"]})
        raise UsageError(f"no engine has a CUDA variant {shown(cuda)}; known: {', '.join(every)}")
    return chosen


# The one "@" an image reference holds: before its digest (distribution/reference's
# grammar, reference.go: reference := name [ ":" tag ] [ "@" digest ]).
_DIGEST_SUFFIX = re.compile(r"@sha256:[0-9a-f]{64}$")


def _check_options(options: Options, repository: str) -> None:
    """Refuse an invalid option, naming it and what is accepted (UsageError)."""
    base = options.base_image
    if base is not None and (
        not isinstance(base, str)
        or not base.strip()
        or any(c.isspace() for c in base)
        or "://" in base  # a URL, which may carry user:password@ (a reference has no scheme)
        or ("@" in base and not _DIGEST_SUFFIX.search(base))
    ):
        raise UsageError(f"--base-image must be an image reference, got {shown(base)}")
    if not isinstance(repository, str) or not _REPOSITORY.fullmatch(repository):
        raise UsageError(
            f"--repository must be a lowercase image name such as "
            f"longcat-deploy or team/longcat, got {shown(repository)}"
        )
    if options.registry is not None:
        _check_registry(options.registry, repository)
    revision = options.revision
    if revision is not None and (not isinstance(revision, str) or not _TAG.fullmatch(revision)):
        raise UsageError(
            f"--revision must be usable in a tag ([A-Za-z0-9_.-], at most 128), got {shown(revision)}"
        )


def is_registry_host(component: str) -> bool:
    """Whether Docker reads ``component``, the first component of ``component/NAME``, as a
    registry host rather than a Docker Hub namespace.

    The docker SDK's rule (docker/auth.py, ``split_repo_name``, which picks the
    credentials a push sends) and the one of Docker's reference parser (distribution/
    reference, normalize.go, ``splitDockerDomain``): a host holds a '.' or a ':' or is
    exactly ``localhost``; anything else is a namespace on docker.io. The parser's newer
    versions also take a component with an uppercase letter for a host; the SDK does not,
    so such a one is not accepted here either.
    """
    return "." in component or ":" in component or component == "localhost"


def _check_registry(registry: object, repository: str) -> None:
    """Refuse a ``--registry`` that is not ``HOST[:PORT]`` text Docker reads as a registry.

    Raises:
        UsageError: for a value that is not text (fire reads ``--registry=True`` as a
            bool, ``--registry`` alone as True), that is no ``HOST[:PORT]`` with a port in
            1..65535, or that Docker would take for a Docker Hub namespace
            (``is_registry_host``): ``myreg/longcat-deploy`` is pushed to
            docker.io/myreg/longcat-deploy.
    """
    example = "e.g. registry.example.com, registry.example.com:5000 or localhost:5000"
    if not isinstance(registry, str):
        raise UsageError(
            f"--registry must be text, HOST or HOST:PORT ({example}), got {shown(registry)}"
        )
    match = _REGISTRY.fullmatch(registry)
    port = int(match[1]) if match and match[1] else None
    if not match or (port is not None and not 1 <= port <= 65535):
        raise UsageError(
            f"--registry must be HOST or HOST:PORT with a port in 1..65535 "
            f"(e.g. 127.0.0.1:5000), got {shown(registry)}"
        )
    if not is_registry_host(registry):
        raise UsageError(
            f"--registry {shown(registry)} is no registry host to Docker: it would read "
            f"{registry}/{repository} as docker.io/{registry}/{repository} and push it to "
            "Docker Hub. A registry host holds a '.' or a port, or is localhost "
            f"({example})"
        )


# The fields a tag template may hold (--tag, [tags] in images/matrix.toml), each as a plain
# {name}: what ``plan`` fills in for every image.
TAG_FIELDS = ("engine", "version", "cuda", "revision")


def check_tag_template(template: str, origin: str) -> None:
    """Refuse a tag template that holds anything but the plain fields ``TAG_FIELDS``.

    ``str.format`` would follow ``{engine.__class__}`` (an attribute), ``{engine[0]}`` (an
    index), ``{engine!r}`` (a conversion) and ``{cuda:>12}`` (a format spec); each field
    ``string.Formatter().parse`` finds must be exactly one of the names.

    Args:
        template: e.g. ``"{engine}-{cuda}-custom"``.
        origin: where it came from, for the message (``"--tag"``).

    Raises:
        UsageError: naming the field at fault (or the unbalanced brace) and the fields
            accepted.
    """
    accepted = " ".join(f"{{{name}}}" for name in TAG_FIELDS)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # "Single '}' encountered", "expected '}' before end of string"
        raise UsageError(
            f"tag template {shown(template)} ({origin}): {exc} (a literal brace is written "
            f"twice); the fields are {accepted}"
        ) from None
    for _, name, spec, conversion in parts:
        if name is None or (name in TAG_FIELDS and not spec and conversion is None):
            continue
        written = f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
        raise UsageError(
            f"tag template {shown(template)} ({origin}): unknown field {shown(written)}; the "
            f"fields are {accepted}, each as written there (no attribute, index, conversion "
            "or format spec)"
        )


def _render_tags(
    templates: list[tuple[str, str]], fields: dict, image_repo: str
) -> list[tuple[str, str]]:
    """Fill each (template, origin) with ``fields``; return (repository:tag, origin) pairs.

    Raises:
        UsageError: a template with other fields than ``TAG_FIELDS`` (``check_tag_template``)
            or one that does not render to a valid tag.
    """
    rendered = []
    for template, origin in templates:
        check_tag_template(template, origin)
        value = template.format(**fields)
        if not _TAG.fullmatch(value):
            raise UsageError(
                f"tag {shown(value)} (from {shown(template)}, {origin}) is not a valid tag: "
                "[A-Za-z0-9_.-], not starting with . or -, at most 128"
            )
        name = f"{image_repo}:{value}"
        if name not in (n for n, _ in rendered):
            rendered.append((name, origin))
    return rendered


def plan(
    matrix: dict,
    engines=(),
    options: Options = Options(),
    *,
    root: Path = ROOT,
    created: str | None = None,
) -> list[Target]:
    """Work out every image to build, its base, build args and tags. Needs no daemon.

    Args:
        matrix: from ``load_matrix``.
        engines: engine names; empty means every engine in the matrix.
        options: the shared command-line options (``Options``).
        root: the project root (pyproject.toml, images/, .git).
        created: the ``created`` label (RFC 3339); default now, in UTC.

    Returns:
        One ``Target`` per image, in matrix order. Every rendered tag names exactly one
        of them.

    Raises:
        UsageError: for any invalid argument, naming it and what is accepted, and for a
            tag that would name two images.
    """
    repository = matrix["tags"]["repository"] if options.repository is None else options.repository
    _check_options(options, repository)
    extra = _as_list(options.tag, "--tag")
    selected = select_targets(matrix, engines, options.cuda)
    revision = git_revision(root) if options.revision is None else options.revision
    project = project_metadata(root)
    created = created or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    image_repo = f"{options.registry}/{repository}" if options.registry else repository
    vcs_url = source_url(root)
    targets, owners = [], {}
    for name, variant, is_default in selected:
        spec = matrix["engines"][name]
        fields = {
            "engine": name,
            "version": spec["version"],
            "cuda": variant["cuda"],
            "revision": revision or "",
        }
        official = f"{spec['repository']}:{variant['base_tag'].format(**fields)}"
        digest = variant.get("digest", "") or ""
        if digest:
            official += f"@{digest}"
        base = options.base_image or official
        scheme = [
            ("full", True),
            ("moving_cuda", True),
            ("moving", is_default),
            ("revision", bool(revision)),
        ]
        templates = [
            (matrix["tags"][key], f"[tags].{key} in {MATRIX}") for key, wanted in scheme if wanted
        ]
        templates += [(t, "--tag") for t in extra]
        tags = _render_tags(templates, fields, image_repo)
        target = Target(
            engine=name,
            version=spec["version"],
            cuda=variant["cuda"],
            default=is_default,
            base_image=base,
            base_digest="" if options.base_image else digest,
            official_base=official,
            dockerfile=spec["dockerfile"],
            min_driver=matrix["cuda"][variant["cuda"]]["min_driver"],
            tags=[t for t, _ in tags],
            unconfirmed=variant.get("unconfirmed", ""),
            build_args={
                "BASE_IMAGE": base,
                "BASE_DIGEST": "" if options.base_image else digest,
                "ENGINE_VERSION": spec["version"],
                "CUDA_VARIANT": variant["cuda"],
                "CUDA_DRIVERS": cuda_drivers(matrix, name),
                "IMAGE_VERSION": str(project["version"]),
                "VCS_REF": revision or "unknown",
                "VCS_URL": vcs_url,
                "BUILD_DATE": created,
            },
        )
        for tag, origin in tags:
            if tag in owners:
                other = owners[tag]
                raise UsageError(
                    f"the tag {tag} (from {origin}) would name both {other.engine} "
                    f"{other.cuda} and {name} {variant['cuda']}, and the later build would "
                    "silently take it: put {engine} and {cuda} in --tag "
                    "(e.g. --tag='{engine}-{cuda}-custom'), or build one image"
                )
            owners[tag] = target
        targets.append(target)
    return targets


def cuda_drivers(matrix: dict, engine: str) -> str:
    """Every CUDA variant of ``engine`` with the driver it needs, for the image's environment.

    Space-separated ``variant:toolkit:min_driver[:min_driver_compat]`` entries (the form
    ``entrypoint.compat.parse_cuda_drivers`` reads as ``LONGCAT_CUDA_DRIVERS``), from the
    matrix's ``[cuda.*]`` tables, e.g. ``cu130:13.0:580.65.06 cu129:12.9:575.51.03:525.60.13``.
    """
    entries = []
    for variant in matrix["engines"][engine]["variants"]:
        cuda = matrix["cuda"][variant["cuda"]]
        fields = [variant["cuda"], str(cuda.get("toolkit", "?")), cuda["min_driver"]]
        if cuda.get("min_driver_compat"):
            fields.append(cuda["min_driver_compat"])
        entries.append(":".join(fields))
    return " ".join(entries)


def format_plan(targets: list[Target], matrix: dict) -> str:
    """Render ``targets`` for a human: one block per image."""
    lines = []
    for t in targets:
        cuda = matrix["cuda"][t.cuda]
        compat = cuda.get("min_driver_compat")
        driver = f"driver >= {t.min_driver}" + (
            f" (>= {compat} with CUDA minor-version compatibility)" if compat else ""
        )
        lines.append(
            f"{t.engine} {t.version}, {t.cuda} (CUDA {cuda.get('toolkit', '?')}, "
            f"{driver}){', default variant' if t.default else ''}"
        )
        lines.append(f"  dockerfile  {t.dockerfile}")
        if t.base_image == t.official_base:
            pin = "" if t.base_digest else "   (digest unknown: pinned by tag only)"
            lines.append(f"  base        {t.base_image}{pin}")
        else:
            lines.append(f"  base        {t.base_image}   (override; official: {t.official_base})")
        if t.unconfirmed:
            lines.append(f"  note        upstream tag not confirmed: {t.unconfirmed}")
        for i, name in enumerate(t.tags):
            lines.append(f"  {'tags' if i == 0 else '':<11} {name}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def record_digest(root: Path, engine: str, cuda: str, digest: str) -> Path:
    """Write ``digest`` into the empty ``digest`` of ``engine``'s ``cuda`` variant in
    ``images/matrix.toml``, keeping every other byte (comments included).

    Returns:
        The matrix file's path.

    Raises:
        UsageError: ``digest`` is not ``sha256:<64 hex>``.
        BuildError: the variant is missing, already has a digest, or the edit would not
            parse back to exactly that change (nothing is written then).
    """
    if not _DIGEST.fullmatch(digest):
        raise UsageError(f"not an image digest: {shown(digest)} (sha256:<64 hex>)")
    path = root / MATRIX
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    header = f"[[engines.{engine}.variants]]"
    where, block, current = None, False, {}

    def close():
        nonlocal where
        if block and current.get("cuda") == cuda:
            where = current

    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            close()
            block, current = stripped == header, {}
        elif block:
            match = re.match(r'(cuda|digest)\s*=\s*"([^"]*)"', stripped)
            if match:
                current[match[1]] = match[2]
                current[f"{match[1]}_line"] = i
    close()
    if where is None:
        raise BuildError(f"{path} has no [[engines.{engine}.variants]] with cuda = {cuda!r}")
    if where.get("digest"):
        raise BuildError(f"{path}: {engine} {cuda} already pins {where['digest']}")
    if "digest_line" in where:
        i = where["digest_line"]
        lines[i] = re.sub(r'(digest\s*=\s*)"[^"]*"', rf'\1"{digest}"', lines[i], count=1)
    else:
        i = where["cuda_line"]
        lines.insert(i + 1, f'digest = "{digest}"\n')
    new = "".join(lines)
    expected = tomllib.loads(text)
    [v for v in expected["engines"][engine]["variants"] if v["cuda"] == cuda][0]["digest"] = digest
    if tomllib.loads(new) != expected:
        raise BuildError(
            f"recording the digest would change more than {engine} {cuda}'s "
            f"digest in {path}; edit it by hand"
        )
    partial = path.with_name(path.name + ".partial")
    partial.write_text(new)
    os.replace(partial, path)
    return path
