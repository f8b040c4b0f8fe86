"""The CPU stand-in base that carries the real engine: what ``build.py --base-image`` gets
in the real-engine image and compose tests, in place of ``vllm/vllm-openai``.

It is one layer on top of the stand-in laid out like ``vllm/vllm-openai`` (the default
CUDA variant's layout, ``tests.fakes.bases.layout_image``; the ``FROM`` is the single build
argument ``STANDIN``): the real-engine environment's wheelhouse and our
two wheels (the ``vllm`` name and the CPU plugin, ``tests/real_engine/env.py``) installed
with pip ``--no-index``, and Debian's ``libnuma1`` (vLLM's CPU kernels link
``libnuma.so.1``; without it ``import vllm._C_AVX2`` fails), fetched on the host with
``apt-get download`` and installed with ``dpkg``: the build needs no network. The wheels
are for CPython 3.11 (torch's CPU wheel on disk is cp311): the stand-in's ``python3`` must
be 3.11.

``python -m tests.real_engine.image`` builds it unless it exists (``.ci/setup`` runs it)
and prints its name. The tag is a hash of the recipe (stand-in, wheels, Dockerfile), so a
change gets a new image; images are kept between runs, like the stand-in.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
import tempfile
from pathlib import Path

REPOSITORY = "longcat-deploy-real-base"
# Debian packages the CPU build needs that the stand-in (and the official images) lack.
DEBS = ("libnuma1",)
DOCKERFILE = """\
# The vLLM stand-in layout plus vLLM's CPU build (tests/real_engine/image.py). Classic builder.
ARG STANDIN
# hadolint ignore=DL3006
FROM ${STANDIN}
COPY debs/ /tmp/real-engine-debs/
RUN dpkg -i /tmp/real-engine-debs/*.deb && rm -rf /tmp/real-engine-debs
COPY wheels/ /tmp/real-engine-wheels/
RUN python3 -c 'import sys; v = sys.version_info[:2]; \\
sys.exit(0 if v == (3, 11) else \\
"the stand-in python3 is %d.%d; the real engine wheels are cp311" % v)' \\
    && PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet \\
        --no-cache-dir --no-index --no-deps --disable-pip-version-check \\
        /tmp/real-engine-wheels/*.whl \\
    && rm -rf /tmp/real-engine-wheels
"""


def vllm_layout() -> str:
    """The stand-in laid out like the official vLLM image's default variant, which
    ``.ci/setup-docker`` builds (``tests.fakes.bases``): what the real engine goes into."""
    from images.matrix import load_matrix
    from tests.fakes.bases import layout_image

    default_cuda = load_matrix()["engines"]["vllm"]["variants"][0]["cuda"]
    return layout_image("vllm", default_cuda)


def image_name(standin: str) -> str:
    """``REPOSITORY:TAG`` of the base for ``standin``; the tag hashes the whole recipe."""
    from tests.real_engine import env

    recipe = "\n".join([standin, DOCKERFILE, *DEBS, env.engine_recipe(), env.plugin_version()])
    return f"{REPOSITORY}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def fetch_debs(folder: Path) -> list[Path]:
    """``apt-get download`` each of ``DEBS`` (this host is Debian 12, as the stand-in is)
    into ``folder``; after ``apt-get update`` when the package lists lack them.

    Raises:
        RuntimeError: apt-get could not fetch them.
    """
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    for attempt in ("download", "update"):
        if attempt == "update":
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        done = subprocess.run(
            ["apt-get", "download", "-qq", *DEBS], cwd=folder, capture_output=True, text=True
        )
        if done.returncode == 0:
            return sorted(folder.glob("*.deb"))
    raise RuntimeError(f"apt-get download {' '.join(DEBS)} failed: {done.stderr.strip()}")


def write_context(path: Path, wheelhouse: Path) -> None:
    """Write the build context (Dockerfile, ``debs/``, ``wheels/``) to the tar file ``path``."""
    from tests.real_engine import env

    with tempfile.TemporaryDirectory() as tmp, tarfile.open(path, "w") as tar:
        for deb in fetch_debs(Path(tmp) / "debs"):
            tar.add(deb, arcname=f"debs/{deb.name}")
        for wheel in env.install_set(wheelhouse, Path(tmp)):
            tar.add(wheel, arcname=f"wheels/{wheel.name}")
        dockerfile = Path(tmp) / "Dockerfile"
        dockerfile.write_text(DOCKERFILE)
        tar.add(dockerfile, arcname="Dockerfile")


def ensure_base(client, standin: str, *, log=print) -> str:
    """Build the base on ``standin`` unless it exists; return its name.

    Needs the real-engine wheelhouse (``python -m tests.real_engine.env``).

    Raises:
        RuntimeError: the wheelhouse is missing, or the build failed (with its log).
    """
    import docker.errors

    from tests.real_engine import env

    name = image_name(standin)
    try:
        client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    wheelhouse = env.wheelhouse_dir()
    if not (wheelhouse / env.STAMP).exists():
        raise RuntimeError(
            f"the real-engine wheelhouse {wheelhouse} is missing: run "
            "`.venv/bin/python -m tests.real_engine.env` first"
        )
    log(
        f"real-engine: building {name} FROM {standin} (the real engine, offline from "
        f"{wheelhouse}; about 3 minutes)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context.tar"
        write_context(context, wheelhouse)
        with open(context, "rb") as f:
            output = []
            for chunk in client.api.build(
                fileobj=f,
                custom_context=True,
                tag=name,
                rm=True,
                forcerm=True,
                network_mode="none",
                decode=True,
                buildargs={"STANDIN": standin},
            ):
                if "error" in chunk:
                    raise RuntimeError(
                        f"building {name} failed: {chunk['error']}\n" + "".join(output)[-4000:]
                    )
                output.append(chunk.get("stream", ""))
    return name


def main(argv: list[str]) -> int:
    """``python -m tests.real_engine.image``: build the base if missing; print its name."""
    import docker

    if argv:
        print("usage: python -m tests.real_engine.image", file=sys.stderr)
        return 2
    client = docker.from_env(timeout=1800)
    try:
        print(
            ensure_base(client, vllm_layout(), log=lambda m: print(m, file=sys.stderr, flush=True))
        )
    except RuntimeError as exc:
        print(f"real-engine: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
