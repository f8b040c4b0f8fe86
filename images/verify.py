"""In-image verification: what a new image must pass before it gets any tag.

1. Our package and every dependency it declares are installed for the image's ``python3``,
   and the base holds the engine at the pinned release (compared by public version: a
   wheel built for a non-default CUDA carries a local version such as ``+cu129``).
2. ``python3 -m entrypoint check --all`` through the image's own ENTRYPOINT: the engine's
   real parser accepts every standard plan.
"""

from __future__ import annotations

import json
import shlex
import sys

from .errors import BuildError
from .matrix import LABEL_PREFIX, Target

# Seconds: importing a real engine's parser takes tens of seconds.
VERIFY_TIMEOUT_S = 900

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
print(json.dumps({"problems": problems, "engine_version": engine_version,
                  "python": sys.executable}))
"""


def public_version(text: str) -> str:
    """The public part of a PEP 440 version: ``1.2.3+cu129`` -> ``1.2.3``.

    vLLM's setup.py (``get_vllm_version``) appends ``+cu<XYZ>`` when it builds for a CUDA
    other than its main one; the release is the same.

    Raises:
        ValueError: ``text`` is not a PEP 440 version.
    """
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text).public
    except InvalidVersion:
        raise ValueError(f"{text!r} is not a PEP 440 version") from None


def run_in_image(
    client,
    image_id: str,
    *,
    command: list[str],
    entrypoint: list[str] | None = None,
    timeout_s: float = VERIFY_TIMEOUT_S,
) -> tuple[int, str]:
    """Run a container of ``image_id`` to completion; return (exit status, output).

    The container uses host networking, is labelled ``dev.longcat-deploy.build-check`` and
    is always removed.

    Raises:
        BuildError: it did not finish within ``timeout_s`` seconds.
    """
    kwargs = {"entrypoint": entrypoint} if entrypoint is not None else {}
    container = client.containers.run(
        image_id,
        command=command,
        detach=True,
        network_mode="host",
        labels={f"{LABEL_PREFIX}.build-check": "1"},
        **kwargs,
    )
    try:
        try:
            status = container.wait(timeout=timeout_s)["StatusCode"]
        except Exception as exc:  # requests' ReadTimeout/ConnectionError
            raise BuildError(
                f"{shlex.join((entrypoint or []) + command)} in {image_id[:19]} "
                f"did not finish within {timeout_s:.0f} s: {exc}"
            ) from None
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return status, output
    finally:
        container.remove(force=True)


def verify_image(client, image_id: str, target: Target, out=None) -> str:
    """Check the new image before it is tagged (see the module's docstring).

    Returns:
        The engine version the image holds, as its distribution reports it
        (e.g. ``1.2.3+cu129``).

    Raises:
        BuildError: naming each missing dependency, a version mismatch, or each flag the
            engine rejected (with the check's report).
    """
    out = sys.stdout if out is None else out  # looked up now: build.py redacts it
    status, output = run_in_image(
        client, image_id, entrypoint=["python3", "-c", _PROBE], command=[target.engine]
    )
    try:
        probe = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BuildError(
            f"verifying {target.engine}: the dependency probe failed "
            f"(exit {status}):\n{output.strip()}"
        ) from None
    if probe["problems"]:
        raise BuildError(
            f"verifying {target.engine}: the image lacks what the launcher "
            "needs:\n  " + "\n  ".join(probe["problems"])
        )
    have = probe["engine_version"]
    if have is None:
        raise BuildError(
            f"verifying {target.engine}: the base {target.base_image} does not "
            f"have {target.engine} installed for python3 "
            f"({probe.get('python', '?')})"
        )
    try:
        public = public_version(have)
        matches = public == public_version(target.version)
    except ValueError as exc:
        raise BuildError(f"verifying {target.engine}: {exc}") from None
    if not matches:
        raise BuildError(
            f"verifying {target.engine}: the base {target.base_image} holds "
            f"{target.engine} {have} (public version {public}), but "
            f"images/matrix.toml pins {target.version}"
        )
    out.write(
        f"verify: the image holds {target.engine} {have} (public version {public}), "
        f"the pin is {target.version}; the launcher's dependencies are installed for "
        f"{probe.get('python', 'python3')}\n"
    )
    status, output = run_in_image(client, image_id, command=["check", "--all"])
    out.write(output if output.endswith("\n") else output + "\n")
    if status != 0:
        rejected = [
            line.strip()[len("rejected ") :]
            for line in output.splitlines()
            if line.strip().startswith("rejected ")
        ]
        detail = (
            ("the engine rejected:\n  " + "\n  ".join(rejected))
            if rejected
            else f"the check exited with status {status}:\n{output.strip()}"
        )
        raise BuildError(
            f"verifying {target.engine} ({target.cuda}): `python3 -m entrypoint "
            f"check --all` failed inside the image, so it was not tagged; "
            f"{detail}"
        )
    return have
