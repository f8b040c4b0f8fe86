"""Stand-ins for the official engine images, laid out as ``official_images.toml`` says.

They stack in three layers:

1. the *minbase* (``tests/images/standin.py``; ``.ci/setup-docker`` builds it): Debian 12,
   its python3 and pip, and the libraries every official base ships (huggingface_hub,
   nvidia-ml-py), installed into the system python3.
2. a *layout* per engine and CUDA variant (``layout_image``, ``ensure_layout``): where
   python3 is and where the packages live, pip and the PEP 668 marker, PATH and the
   environment, labels, WORKDIR, ENTRYPOINT and CMD, and the pre-downloaded Hugging Face
   files. No engine. Its name holds a hash of its recipe; it is built on first use and
   kept, like the minbase (the same recipe builds the same image, so a layer built on top
   of it stays cached).
3. a *fake base* (``build_fake_base``): a layout plus the engine's fake
   (``tests.fakes.engines``), whose version is the pin plus the variant's local version
   (``1.2.3+cu129``-style). This is what ``--base-image`` points at in the tests.

A base with a real engine builds on a layout instead of a fake one:
``FROM <layout_image("vllm", "cu130")>``, then installs the engine with ``python3 -m pip``
(no ``--break-system-packages``: the layout has no PEP 668 marker, as the official image).

``python -m tests.fakes.bases name ENGINE CUDA`` prints a layout's name;
``python -m tests.fakes.bases ensure [ENGINE CUDA]`` builds the missing layouts (all of
them by default) and prints their names.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FACTS = Path(__file__).resolve().with_name("official_images.toml")
REPOSITORY = "longcat-deploy-standin"
# Layouts are kept between runs: this label (not the tests' session label) marks them.
LAYOUT_LABEL = "dev.longcat-deploy.standin"
# A fixed time for the build contexts' files: the same recipe gives the same bytes.
_MTIME = 1580601600
NVIDIA_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"

# The CUDA base's entrypoint prints a banner and runs its arguments (bash without any);
# the stand-in does the same, minus the GPU and driver checks (official_images.toml,
# [differences]).
_NVIDIA_ENTRYPOINT_SCRIPT = """\
#!/bin/sh
# Stand-in for the CUDA base images' /opt/nvidia/nvidia_entrypoint.sh (tests/fakes/bases.py).
echo "== CUDA == (longcat-deploy stand-in base: no CUDA here)"
if [ "$#" -eq 0 ]; then exec /bin/bash; fi
exec "$@"
"""

# packages = "venv": a virtual environment holds pip and every package the base ships; the
# system python3 keeps none (they are moved, with their console scripts, from the
# minbase's system site-packages, whose relative layout a venv shares).
_VENV_RUN = """\
RUN set -eu; \\
    python3 -m venv {venv}; \\
    system_site=$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \\
    system_bin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'); \\
    venv_site=$({venv}/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \\
    mv "$system_site"/* "$venv_site"/; \\
    for script in "$system_bin"/*; do \\
        if head -n 1 "$script" | grep -q '^#!/usr/bin/python3'; then \\
            sed -i '1s|.*|#!{venv}/bin/python3|' "$script"; mv "$script" {venv}/bin/; \\
        fi; \\
    done; \\
    {venv}/bin/python3 -c 'import huggingface_hub, pynvml'; \\
    ! /usr/bin/python3 -c 'import huggingface_hub' 2>/dev/null
"""

# packages = "get-pip": pip installed into the system python3 by itself (get-pip.py does
# that; the stand-in uses the pip wheel Debian ships, no network), Debian's pip removed,
# and the PEP 668 marker deleted.
_GET_PIP_RUN = """\
RUN set -eu; \\
    version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \\
    python3 -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \\
        --break-system-packages --ignore-installed --find-links /usr/share/python-wheels pip; \\
    dpkg --purge python3-pip >/dev/null; \\
    rm -f "/usr/lib/python$version/EXTERNALLY-MANAGED"; \\
    python3 -m pip --version
"""

# A fake base: a layout plus one engine's fake, installed with the layout's own pip (no
# PEP 668 override: a layout that refused it would be wrong).
FAKE_BASE_DOCKERFILE = """\
ARG LAYOUT
FROM ${LAYOUT}
ARG FAKE_ENGINE_REJECT=""
ENV FAKE_ENGINE_REJECT=${FAKE_ENGINE_REJECT}
COPY wheels/ /tmp/fake-wheels/
RUN python3 -m pip install --quiet --no-cache-dir --no-index --no-deps \\
        --disable-pip-version-check /tmp/fake-wheels/*.whl \\
    && rm -rf /tmp/fake-wheels
"""


def load_facts(path: Path = FACTS) -> dict:
    """Return official_images.toml with each ``{value, source}`` fact reduced to its value.

    Returns:
        {"sglang": {fact: value, "variants": {cuda: {fact: value}}}, "vllm": ..., ...}.

    Raises:
        OSError, tomllib.TOMLDecodeError: the file cannot be read.
    """

    def values(table: dict) -> dict:
        return {
            k: (v["value"] if isinstance(v, dict) and "value" in v else values(v))
            for k, v in table.items()
        }

    with open(path, "rb") as f:
        return values(tomllib.load(f))


def hf_cache_files(repos: list[str]) -> dict[str, str | bytes]:
    """The hub-layout files of ``repos`` ("org/name@revision"), relative to HF_HOME.

    Returns:
        {path: bytes for a file, str for a relative symlink}: per repository
        ``hub/models--org--name/refs/<revision>`` (the commit), ``blobs/<sha256>`` and
        ``snapshots/<commit>/...`` links to the blobs, as huggingface_hub lays them out
        (file_download.py). Contents are placeholders; the commit is derived from the name.
    """
    files: dict[str, str | bytes] = {}
    for spec in repos:
        repo, _, revision = spec.partition("@")
        folder = "hub/models--" + repo.replace("/", "--")
        commit = hashlib.sha1(spec.encode()).hexdigest()
        files[f"{folder}/refs/{revision or 'main'}"] = commit.encode()
        package = repo.split("/")[-1].replace("-", "_")
        for name in ("README.md", f"build/torch-cuda/{package}/__init__.py"):
            content = f"# longcat-deploy stand-in for {spec}: {name}\n".encode()
            blob = hashlib.sha256(content).hexdigest()
            files[f"{folder}/blobs/{blob}"] = content
            up = "../" * (name.count("/") + 2)
            files[f"{folder}/snapshots/{commit}/{name}"] = f"{up}blobs/{blob}"
    return files


def _instruction(keyword: str, values: dict[str, str]) -> str:
    return f"{keyword} " + " \\\n    ".join(f"{k}={json.dumps(v)}" for k, v in values.items())


def layout_dockerfile(engine: str, minbase: str, facts: dict | None = None) -> str:
    """The Dockerfile of ``engine``'s layout FROM ``minbase``, from its facts only.

    Raises:
        KeyError: ``engine`` has no facts; ValueError: an unknown ``packages`` fact.
    """
    f = (load_facts() if facts is None else facts)[engine]
    lines = [f"FROM {minbase}"]
    if f["packages"] == "venv":
        lines.append(_VENV_RUN.format(venv=f["venv"]).rstrip())
    elif f["packages"] == "get-pip":
        lines.append(_GET_PIP_RUN.rstrip())
    else:
        raise ValueError(f"{engine}: unknown packages fact {f['packages']!r}")
    lines.append(_instruction("ENV", {"PATH": f["path"], **f["env"]}))
    if f["hf_cache"]:
        lines.append(f"COPY hf-cache/ {f['hf_home']}/")
    if NVIDIA_ENTRYPOINT in f["entrypoint"]:
        lines.append(f"COPY nvidia_entrypoint.sh {NVIDIA_ENTRYPOINT}")
    lines.append(f"WORKDIR {f['workdir']}")
    if f["user"]:
        lines.append(f"USER {f['user']}")
    if f["labels"]:
        lines.append(_instruction("LABEL", {LAYOUT_LABEL: "layout", **f["labels"]}))
    lines.append(f"ENTRYPOINT {json.dumps(f['entrypoint'])}")
    if f["cmd"]:
        lines.append(f"CMD {json.dumps(f['cmd'])}")
    return "\n".join(lines) + "\n"


def _tar(files: dict[str, str | bytes]) -> bytes:
    """A tar build context: bytes are files (0755 for *.sh), str are symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(files):
            data = files[name]
            item = tarfile.TarInfo(name)
            item.mtime = _MTIME
            if isinstance(data, str):
                item.type, item.linkname = tarfile.SYMTYPE, data
                tar.addfile(item)
            else:
                item.size, item.mode = len(data), 0o755 if name.endswith(".sh") else 0o644
                tar.addfile(item, io.BytesIO(data))
    return buffer.getvalue()


def layout_context(engine: str, minbase: str, facts: dict | None = None) -> dict:
    """{path: bytes or symlink target} of the layout's build context (Dockerfile included)."""
    facts = load_facts() if facts is None else facts
    dockerfile = layout_dockerfile(engine, minbase, facts)
    files: dict[str, str | bytes] = {"Dockerfile": dockerfile.encode()}
    files.update({f"hf-cache/{p}": d for p, d in hf_cache_files(facts[engine]["hf_cache"]).items()})
    if NVIDIA_ENTRYPOINT in facts[engine]["entrypoint"]:
        files["nvidia_entrypoint.sh"] = _NVIDIA_ENTRYPOINT_SCRIPT.encode()
    return files


def _minbase() -> str:
    from tests.images.standin import image_name

    return image_name(ROOT)


def layout_image(engine: str, cuda: str, minbase: str | None = None) -> str:
    """``REPOSITORY:<engine>-<cuda>-<hash>``: the name of that layout, whose tag changes
    with its recipe (the minbase's name, the facts, the Dockerfile)."""
    minbase = _minbase() if minbase is None else minbase
    files = layout_context(engine, minbase)
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data.encode() if isinstance(data, str) else data)
    return f"{REPOSITORY}:{engine}-{cuda}-{digest.hexdigest()[:12]}"


def _build(client, context: bytes, **kwargs) -> None:
    from tests.images.dockerutil import consume_build

    consume_build(
        client.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            rm=True,
            forcerm=True,
            network_mode="host",
            decode=True,
            **kwargs,
        )
    )


def ensure_layout(client, engine: str, cuda: str) -> str:
    """Build ``engine``'s ``cuda`` layout unless it is there; return its name.

    Raises:
        RuntimeError: the minbase is missing (run ``.ci/setup-docker``).
        AssertionError: the build failed (the message holds its log).
    """
    import docker.errors

    minbase = _minbase()
    name = layout_image(engine, cuda, minbase)
    try:
        client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(minbase)
    except docker.errors.ImageNotFound:
        raise RuntimeError(
            f"the stand-in minbase {minbase} is missing: run "
            "`bash .ci/setup-docker` (it builds it once)"
        ) from None
    _build(client, _tar(layout_context(engine, minbase)), tag=name)
    return name


def engine_version(matrix: dict, engine: str, cuda: str, facts: dict | None = None) -> str:
    """The version a real ``engine`` wheel of that CUDA variant reports: the pin plus the
    variant's local version (``version_suffix``)."""
    facts = load_facts() if facts is None else facts
    suffix = facts[engine]["variants"][cuda]["version_suffix"]
    return matrix["engines"][engine]["version"] + suffix


def build_fake_base(
    client, matrix: dict, engine: str, tag: str, *, cuda: str | None = None, reject: str = ""
) -> str:
    """Build ``engine``'s fake base on its ``cuda`` layout as ``tag``; return ``tag``.

    Args:
        cuda: the variant (default: the engine's default, its first in the matrix).
        reject: comma-separated option strings the fake's parser leaves out
            (``FAKE_ENGINE_REJECT``), to stand for an engine that dropped a flag.
    """
    import tempfile

    from tests.fakes.engines import fake_wheels
    from tests.images.dockerutil import TEST_LABEL

    cuda = cuda or matrix["engines"][engine]["variants"][0]["cuda"]
    layout = ensure_layout(client, engine, cuda)
    files: dict[str, str | bytes] = {"Dockerfile": FAKE_BASE_DOCKERFILE.encode()}
    with tempfile.TemporaryDirectory() as tmp:
        for wheel in fake_wheels(engine, engine_version(matrix, engine, cuda), Path(tmp)):
            files[f"wheels/{wheel.name}"] = wheel.read_bytes()
    _build(
        client,
        _tar(files),
        tag=tag,
        labels={TEST_LABEL: tag},
        buildargs={"LAYOUT": layout, "FAKE_ENGINE_REJECT": reject},
    )
    return tag


def _variants() -> list[tuple[str, str]]:
    with open(ROOT / "images" / "matrix.toml", "rb") as f:
        matrix = tomllib.load(f)
    return [(e, v["cuda"]) for e, s in matrix["engines"].items() for v in s["variants"]]


def main(argv: list[str]) -> int:
    """``name ENGINE CUDA`` or ``ensure [ENGINE CUDA]``; returns the exit status."""
    usage = "usage: python -m tests.fakes.bases name ENGINE CUDA | ensure [ENGINE CUDA]"
    if argv[:1] == ["name"] and len(argv) == 3:
        print(layout_image(argv[1], argv[2]))
        return 0
    if argv[:1] == ["ensure"] and len(argv) in (1, 3):
        import docker

        client = docker.from_env(timeout=600)
        for engine, cuda in [tuple(argv[1:])] if len(argv) == 3 else _variants():
            print(ensure_layout(client, engine, cuda))
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
