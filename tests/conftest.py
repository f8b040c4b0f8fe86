"""Shared Docker fixtures for every test that needs a real Docker engine.

Session fixtures, built once per test run and cleaned up at its end:

- ``docker_client``: a ``docker.DockerClient`` on a daemon that answers. No daemon is a
  test *failure*, never a skip: ``.ci/setup-docker`` provides one (CI runs it).
- ``docker_token``: a random token unique to this session; names of images and the
  ``dev.longcat-deploy.test`` label of containers carry it, so parallel sessions on one
  daemon never collide and each removes only what it made.
- ``standin_image``: the local stand-in minbase for the official engine base images
  (tests/images/standin.py), made by ``.ci/setup-docker`` and kept between runs.
- ``fake_base_images``: ``{engine: image}``: that engine's stand-in base, laid out like
  the official image of its default CUDA variant (tests/fakes/bases.py, from
  tests/fakes/official_images.toml), plus its fake engine (tests/fakes/engines): what
  ``--base-image`` points at instead of the official base.
- ``built_images``: ``{engine: tests.images.dockerutil.BuiltImage}``: the shipped
  Dockerfiles built by the shipped build.py (``images.pipeline.build_targets``) from the
  fake bases, verified in-image and tagged ``longcat-test-<token>:<engine>-<version>-<cuda>``
  (and the other tags of the scheme). Reuse it for anything that needs our images, for
  example compose tests: ``built_images["sglang"].ref`` is an image reference to run. Do
  not remove or retag these images; they are removed when the session ends.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

from tests.images.dockerutil import TEST_LABEL, BuiltImage, new_token, remove_images

ROOT = Path(__file__).resolve().parent.parent
# A test that uses any of these fixtures needs the Docker engine: it is marked "docker".
DOCKER_FIXTURES = frozenset(
    {
        "docker_client",
        "docker_token",
        "standin_image",
        "fake_base_images",
        "built_images",
        "local_registry",
    }
)
# ... and these mount filesystems: "root".
ROOT_FIXTURES = frozenset({"tmpfs", "small_filesystem"})


# A test run writes the bytecode of the modules it imports, even where the environment
# says not to (PYTHONDONTWRITEBYTECODE=1, common on CI machines and in images): pytest
# otherwise rewrites the asserts of every test module again in every worker and every run
# (pytest's assertion/rewrite.py writes its cache only when sys.dont_write_bytecode is
# false), seconds of CPU each time. __pycache__ is ignored by git.
sys.dont_write_bytecode = False

# Workers per core for ``pytest -n auto``: about a third of the fast loop is waiting
# (time bounds under test, launcher subprocesses, the fake Hub), which more workers than
# cores fill. PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set (xdist's own rule).
WORKERS_PER_CORE = 2


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: ``WORKERS_PER_CORE`` workers per core this process may use."""
    import os

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return WORKERS_PER_CORE * len(os.sched_getaffinity(0))


def pytest_collection_modifyitems(items):
    """Mark tests by the fixtures they use (``docker``, ``root``), and ``real_engine`` tests
    ``engines`` too (pyproject.toml)."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if DOCKER_FIXTURES & used:
            item.add_marker(pytest.mark.docker)
        if ROOT_FIXTURES & used:
            item.add_marker(pytest.mark.root)
        if item.get_closest_marker("real_engine"):  # the CPU vLLM is an engine environment
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def docker_client():
    """A docker.DockerClient on a live daemon; fails (not skips) when there is none."""
    try:
        import docker
    except ImportError:
        pytest.fail("the docker SDK is missing: pip install -e '.[test]'", pytrace=False)
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to connect
        pytest.fail(
            f"no Docker daemon answers ({exc}); run `bash .ci/setup-docker` first "
            "(CI does). A Docker test that cannot run is a failing test.",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_token(docker_client):
    """This session's unique token; removes the session's leftover containers at the end."""
    token = new_token()
    yield token
    for leftover in docker_client.containers.list(
        all=True, filters={"label": f"{TEST_LABEL}={token}"}
    ):
        with contextlib.suppress(Exception):
            leftover.remove(force=True)


@pytest.fixture(scope="session")
def standin_image(docker_client) -> str:
    """The stand-in base image's name; fails when .ci/setup-docker has not built it."""
    import docker.errors

    from tests.images.standin import image_name

    name = image_name()
    try:
        docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"the stand-in base {name} is missing: run `bash .ci/setup-docker` "
            "(it builds it once, then keeps it)",
            pytrace=False,
        )
    return name


@pytest.fixture(scope="session")
def matrix() -> dict:
    """images/matrix.toml, as build.py reads it."""
    from images.matrix import load_matrix

    return load_matrix(ROOT)


@pytest.fixture(scope="session")
def fake_base_images(docker_client, matrix, standin_image, docker_token) -> dict[str, str]:
    """{engine: fake base image} of each engine's default variant, built for this session
    and removed after it (the layouts under them are kept, like the minbase)."""
    from tests.fakes.bases import build_fake_base

    bases = {}
    try:
        for engine in matrix["engines"]:
            bases[engine] = build_fake_base(
                docker_client, matrix, engine, f"longcat-test-{docker_token}-base:{engine}"
            )
        yield bases
    finally:
        remove_images(docker_client, bases.values())


def build_with_buildpy(
    client,
    matrix: dict,
    engine: str,
    base: str,
    repository: str,
    root: Path = ROOT,
    registry: str | None = None,
    cuda: str | None = None,
    **options,
) -> BuiltImage:
    """Build ``engine``'s image from ``root`` with build.py, FROM ``base``.

    Args:
        registry: ``HOST:PORT`` to prefix the repository with (for pushes).
        cuda: the CUDA variant (default: the engine's default).
        options: more ``images.pipeline.build_targets`` keywords (``no_cache``, ``push``).

    Raises:
        images.errors.BuildError: as build.py would report it (the build, or its
            verification); its ``output`` attribute holds what build.py printed.
    """
    from images.errors import BuildError
    from images.matrix import Options, plan
    from images.pipeline import build_targets

    targets = plan(
        matrix,
        [engine],
        Options(
            base_image=base, repository=repository, registry=registry, revision="test", cuda=cuda
        ),
        root=root,
    )
    out = io.StringIO()
    try:
        results = build_targets(
            targets, client=client, root=root, matrix=matrix, out=out, **options
        )
    except BuildError as exc:
        exc.output = out.getvalue()
        raise
    (result,) = results.values()
    return BuiltImage(
        engine=engine,
        id=result["id"],
        ref=result["tags"][0],
        tags=result["tags"],
        base=base,
        repository=repository,
        output=out.getvalue(),
        digests=result["digests"],
        base_digest=result["base_digest"],
        engine_version=result["engine_version"],
    )


@pytest.fixture(scope="session")
def built_images(docker_client, matrix, fake_base_images, docker_token) -> dict[str, BuiltImage]:
    """{engine: BuiltImage}: our images, built by build.py from the fake bases (see above)."""
    from images.errors import BuildError

    images = {}
    try:
        for engine, base in fake_base_images.items():
            try:
                images[engine] = build_with_buildpy(
                    docker_client, matrix, engine, base, f"longcat-test-{docker_token}"
                )
            except BuildError as exc:
                pytest.fail(
                    f"build.py could not build {engine}: {exc}\n{getattr(exc, 'output', '')}",
                    pytrace=False,
                )
        yield images
    finally:
        for image in images.values():
            remove_images(docker_client, [*image.tags, image.id])


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory):
    """A real registry (Debian's docker-registry, distribution v2) on 127.0.0.1.

    It listens on a free port, stores into a temporary folder of its own, and is stopped at
    the end of the session. Yields ``"127.0.0.1:PORT"``; the Docker engine treats
    127.0.0.1 as an insecure registry, so pushes and pulls need no TLS.
    """
    import shutil
    import subprocess
    import urllib.request

    from tests.images.dockerutil import free_port, poll_until

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail(
            "docker-registry is missing: run `bash .ci/setup-docker` (apt docker-registry)",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(folder / "registry.log", "wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"

    def answers():
        assert process.poll() is None, (folder / "registry.log").read_text()
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as reply:
            return reply.status == 200

    try:
        poll_until(answers, 30, f"the registry on {address}")
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
