"""Helpers for tests that drive a real Docker engine (see tests/conftest.py for fixtures).

Everything here talks to 127.0.0.1 only, polls with a deadline instead of sleeping for a
fixed time, and removes what it creates.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# Every container and image the tests create carries this label, with the session's
# token as value, so a session can find and remove its leftovers.
TEST_LABEL = "dev.longcat-deploy.test"
# How often poll_until looks again, in seconds.
POLL_INTERVAL_S = 0.1


def new_token() -> str:
    """A short random token that makes names unique to one test session."""
    return uuid.uuid4().hex[:10]


def poll_until(check, timeout_s: float, what: str, interval_s: float = POLL_INTERVAL_S):
    """Call ``check()`` until it returns something truthy, or fail after ``timeout_s``.

    Args:
        check: a function of no arguments; exceptions from it count as "not yet".
        timeout_s: the deadline, in seconds from now.
        what: what is awaited, for the failure message.
        interval_s: the pause between two calls, in seconds.

    Returns:
        The first truthy value ``check`` returned.

    Raises:
        AssertionError: the deadline passed; the message holds the last value or error.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.1f} s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval_s)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def container(client, image: str, token: str, **kwargs):
    """Start a detached container with host networking; always remove it afterwards.

    Args:
        client: a docker.DockerClient.
        image: image reference or ID.
        token: the session token, set as the TEST_LABEL value.
        kwargs: more ``client.containers.run`` arguments (environment, command, ...).

    Yields:
        The container object.
    """
    labels = dict(kwargs.pop("labels", {}), **{TEST_LABEL: token})
    created = client.containers.run(
        image, detach=True, network_mode="host", labels=labels, **kwargs
    )
    try:
        yield created
    finally:
        with contextlib.suppress(Exception):
            created.remove(force=True)


def run_to_end(
    client, image: str, token: str, *, timeout_s: float = 120, **kwargs
) -> tuple[int, str, str]:
    """Run a container until it exits; return (exit status, stdout, stderr).

    Raises:
        AssertionError: it did not exit within ``timeout_s`` seconds.
    """
    with container(client, image, token, **kwargs) as c:
        try:
            status = c.wait(timeout=timeout_s)["StatusCode"]
        except Exception as exc:  # requests' ReadTimeout
            raise AssertionError(
                f"container of {image} still running after {timeout_s} s: {exc}"
            ) from None
        out = c.logs(stdout=True, stderr=False).decode(errors="replace")
        err = c.logs(stdout=False, stderr=True).decode(errors="replace")
        return status, out, err


def copy_project(root: Path, destination: Path) -> Path:
    """Copy what build.py builds an image from (pyproject, README, the launcher package,
    images/) from ``root`` to ``destination``, which must not exist yet; return it."""
    destination.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy2(root / name, destination / name)
    for folder in ("entrypoint", "images"):
        shutil.copytree(
            root / folder,
            destination / folder,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    return destination


def consume_build(stream) -> str:
    """Drain a low-level build stream; return the image ID.

    Raises:
        AssertionError: the build reported an error (the message holds the log).
    """
    log, image_id = [], None
    for chunk in stream:
        if "error" in chunk:
            raise AssertionError("build failed: " + chunk["error"] + "\n" + "".join(log))
        log.append(chunk.get("stream", ""))
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = aux["ID"]
    assert image_id, "build reported no image ID:\n" + "".join(log)
    return image_id


def remove_images(client, refs) -> None:
    """Remove each image reference (tag or ID), ignoring those already gone."""
    import docker.errors

    for ref in refs:
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.NotFound):
            client.images.remove(ref, force=True)


@dataclass
class BuiltImage:
    """One image built by build.py from a fake base, for the tests.

    Attributes:
        engine: ``"sglang"`` or ``"vllm"``.
        id: the image ID (``sha256:...``).
        ref: its first tag, ``<repository>:<engine>-<version>-<cuda>``.
        tags: every tag build.py gave it.
        base: the fake base it was built FROM.
        repository: the session's repository (unique per test session).
        output: what build.py printed while building it.
        digests: {tag: registry digest} of the tags build.py pushed (empty if none).
        base_digest: the base's registry digest build.py recorded (``""``: none).
        engine_version: the engine version the image reports (e.g. ``1.2.3+cu129``).
    """

    engine: str
    id: str
    ref: str
    tags: list[str]
    base: str
    repository: str
    output: str = field(repr=False, default="")
    digests: dict[str, str] = field(default_factory=dict)
    base_digest: str = ""
    engine_version: str = ""
