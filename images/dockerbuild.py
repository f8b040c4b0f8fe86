"""Docker: connect, make sure the base image is there (and which digest it is), build.

Builds use the classic builder through the docker SDK (our build machines run Docker 20.10,
API 1.41, without BuildKit), with host networking; no build step needs the network.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError, UsageError
from .matrix import Target

# Seconds: a Docker API call, one read of a build's or a pull's output stream included.
DOCKER_TIMEOUT_S = 900
# What registries answer for a reference they do not hold (distribution's
# MANIFEST_UNKNOWN / NAME_UNKNOWN, and Docker Hub's "pull access denied ... does not
# exist"): matched in lower case.
_MISSING = ("manifest unknown", "not found", "does not exist", "name unknown", "pull access denied")


def docker_client():
    """Connect to the Docker daemon named by the environment (``DOCKER_HOST``, socket).

    Raises:
        UsageError: ``DOCKER_HOST`` is not an address the docker SDK accepts
            (``check_docker_host``).
        BuildError: the docker SDK is missing or no daemon answers.
    """
    try:
        import docker
    except ImportError:
        raise BuildError("the docker SDK is missing: pip install '.[build]'") from None
    check_docker_host(os.environ.get("DOCKER_HOST"))
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT_S)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests' errors, ...
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise BuildError(
            f"cannot reach the Docker daemon at {where}: {exc}. Start it "
            "(on our CI machines: bash .ci/setup-docker)."
        ) from None
    return client


_DOCKER_HOST_FORMS = (
    "Set it to unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://HOST[:PORT] (a user as "
    "USER@HOST), without a password, query or fragment (a TLS daemon takes "
    "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH), or unset it for the local socket."
)


def check_docker_host(host: str | None) -> None:
    """Refuse a ``DOCKER_HOST`` the docker SDK cannot parse, naming the variable, not its
    value (an address with a password in it is one of them).

    The check is the SDK's own: ``docker.utils.parse_host`` (docker/utils/utils.py), which
    ``docker.APIClient`` runs on the address before it connects (docker/api/client.py,
    ``APIClient.__init__``). It refuses another scheme than unix, tcp, ssh, npipe (and the
    http, https, http+unix aliases), a tcp address without a host or a port, a password, a
    query, a fragment, and an ssh address with a path. Its message quotes the address;
    only the reason before it is kept here. urllib's ``ValueError`` that escapes it (a port
    that is not a number, an IPv6 bracket left open) is refused the same way.

    Args:
        host: the value of ``DOCKER_HOST``; ``None`` or empty means the default socket.

    Raises:
        UsageError: the SDK refuses ``host``.
    """
    if not host:
        return
    if "@" in host and not host.strip().startswith("ssh://"):
        # User info outside ssh:// (tcp://TOKEN@host, TOKEN:@host): requests would send it
        # as Basic credentials, and the SDK's messages quote the address.
        raise UsageError(
            "DOCKER_HOST is not a Docker daemon address (it holds user info, which only "
            "ssh:// takes; its value is not shown, as it may hold a password). "
            + _DOCKER_HOST_FORMS
        )
    import docker.errors
    from docker.constants import IS_WINDOWS_PLATFORM
    from docker.utils import parse_host

    try:
        parse_host(host, IS_WINDOWS_PLATFORM)
    except (docker.errors.DockerException, ValueError) as exc:
        # urllib's own ValueError (a port that is not a number, a bracket left open) may
        # quote a piece of the address, a password's included: only its kind is kept.
        if isinstance(exc, docker.errors.DockerException):
            reason = str(exc).replace(host.strip(), "").strip(": ") or type(exc).__name__
        else:
            reason = "its port or brackets are malformed"
        raise UsageError(
            f"DOCKER_HOST is not a Docker daemon address ({reason[:1].lower()}{reason[1:]}; "
            "its value is not shown, as it may hold a password). " + _DOCKER_HOST_FORMS
        ) from None


@dataclass(frozen=True)
class Base:
    """The base image a build will use, as found in the local image store.

    Attributes:
        reference: the reference the Dockerfile builds FROM.
        image_id: its image ID (``sha256:...``).
        digest: its registry manifest digest (``sha256:...``), or ``""`` for an image
            that came from no registry (built here, or imported).
        pulled: True when build.py pulled it just now.
    """

    reference: str
    image_id: str
    digest: str
    pulled: bool


def split_reference(reference: str) -> tuple[str, str, str]:
    """Split ``[host[:port]/]path[:tag][@digest]`` into (repository, tag, digest).

    The tag is ``""`` when absent (Docker then means ``latest``); so is the digest.
    """
    rest, _, digest = reference.partition("@")
    head, _, last = rest.rpartition("/")
    name, _, tag = last.partition(":")
    return (f"{head}/{name}" if head else name), tag, digest


def _normalised(repository: str) -> str:
    """Docker Hub's short form of a repository, as the daemon lists it in RepoDigests."""
    for prefix in (
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ):
        if repository.startswith(prefix):
            return repository[len(prefix) :]
    return repository


def listing_hint(repository: str) -> str:
    """How to list the tags ``repository`` has, for an error message."""
    repository = _normalised(repository)
    first = repository.split("/", 1)[0]
    on_hub = "/" not in repository or not ("." in first or ":" in first or first == "localhost")
    where = f"docker://docker.io/{repository}" if on_hub else f"docker://{repository}"
    hint = f"list its published tags with `skopeo list-tags {where}`"
    if on_hub:
        hint += f" or at https://hub.docker.com/r/{repository}/tags"
    return hint


def _repo_digest(attrs: dict, repository: str) -> str:
    """The manifest digest the daemon recorded for ``repository`` (``""`` if none)."""
    wanted = _normalised(repository)
    for entry in attrs.get("RepoDigests") or []:
        name, _, digest = entry.partition("@")
        if _normalised(name) == wanted:
            return digest
    return ""


def resolve_base(client, reference: str, out=None) -> Base:
    """Find ``reference`` in the local image store, pulling it when it is not there.

    Runs before any build step, so a base that does not exist fails at once, and the
    digest the build really used is known for its labels and summary.

    Raises:
        BuildError: the registry does not have ``reference`` (the message names it and
            says how to list the published tags), or the pull failed otherwise.
    """
    import docker.errors

    out = sys.stdout if out is None else out  # looked up now: build.py redacts it

    repository, tag, digest = split_reference(reference)
    pulled = False
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        out.write(f"base: {reference} is not here; pulling it\n")
        error = None
        try:
            for chunk in client.api.pull(reference, stream=True, decode=True):
                if "error" in chunk or "errorDetail" in chunk:
                    error = chunk.get("error") or chunk["errorDetail"].get("message", "")
                    break
        except docker.errors.APIError as exc:
            error = str(exc.explanation or exc)
        if error is None:
            try:
                image = client.images.get(reference)
            except docker.errors.ImageNotFound:
                error = "the daemon reported no error, but the image is not there"
        if error is not None:
            if any(word in error.lower() for word in _MISSING):
                raise BuildError(
                    f"the base image {reference} does not exist (the registry answered: "
                    f"{error.strip()}). Check the tag, or {listing_hint(repository)}; "
                    "images/matrix.toml names the variants upstream publishes"
                ) from None
            raise BuildError(
                f"cannot pull the base image {reference}, and it is not in the "
                f"local image store: {error.strip()}"
            ) from None
        pulled = True
    found = digest or _repo_digest(image.attrs, repository)
    return Base(reference=reference, image_id=image.id, digest=found, pulled=pulled)


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def stream_build(client, context: Path, target: Target, *, no_cache: bool = False, out=None) -> str:
    """Build ``context`` with the classic builder, streaming its output to ``out``.

    Nothing is tagged here. Builds and their RUN steps use host networking (our daemons run
    with ``--bridge=none``); no step needs the network, and the base is never pulled here
    (``resolve_base`` did that).

    Returns:
        The new image's ID.

    Raises:
        BuildError: a step failed; the message names the step and holds its log.
    """
    out = sys.stdout if out is None else out  # looked up now: build.py redacts it
    step, instruction, step_log, image_id = "", "", [], None
    stream = client.api.build(
        path=str(context),
        dockerfile="Dockerfile",
        buildargs=target.build_args,
        nocache=bool(no_cache),
        rm=True,
        forcerm=True,
        pull=False,
        network_mode="host",
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk or "errorDetail" in chunk:
            message = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
            log = "".join(step_log).rstrip() or "(no output)"
            where = f"step {step}: {instruction}" if step else "before the first step"
            raise BuildError(
                f"building {target.engine} ({target.cuda}) failed at {where}\n"
                f"--- output of that step ---\n{log}\n--- error ---\n"
                f"{message.strip()}"
            )
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
        raise BuildError(
            f"building {target.engine} ({target.cuda}): the daemon reported no "
            "image ID and no error"
        )
    return image_id


def added_layers_size(client, image_id: str, base_image: str) -> int:
    """Bytes that ``image_id`` adds on top of ``base_image``: the sum of its own layers.

    The image's history (newest first) holds the base's history at its end; what comes
    before is ours. Counting entries works whether or not the layers were built here.

    Raises:
        docker.errors.ImageNotFound: either image is missing.
    """
    history = client.api.history(image_id)
    base = client.api.history(base_image)
    ours = history[: len(history) - len(base)]
    return sum(entry.get("Size", 0) for entry in ours)
