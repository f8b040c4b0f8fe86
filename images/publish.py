"""Tag a verified image, push its tags, and drop an image that failed verification."""

from __future__ import annotations

import sys

from .errors import BuildError


def tag_image(client, image_id: str, tags: list[str]) -> None:
    """Give ``image_id`` every ``repository:tag`` in ``tags``.

    Raises:
        BuildError: the daemon refused a tag.
    """
    for name in tags:
        repository, _, tag = name.rpartition(":")
        if not client.api.tag(image_id, repository, tag, force=True):
            raise BuildError(f"the daemon refused to tag {image_id[:19]} as {name}")


def push_tags(client, tags: list[str], out=None) -> dict[str, str]:
    """Push each tag; return {tag: the registry's manifest digest}.

    Raises:
        BuildError: a tag is not there locally, or the registry refused a push.
    """
    import docker.errors

    out = sys.stdout if out is None else out  # looked up now: build.py redacts it

    digests = {}
    for name in tags:
        repository, _, tag = name.rpartition(":")
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            raise BuildError(
                f"cannot push {name}: there is no such image here; build it "
                "first (python build.py build ...), or pass the --revision and "
                "--tag it was built with"
            ) from None
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


def discard_untagged(client, image_id: str) -> None:
    """Remove a rejected image unless something else already tagged it (best effort)."""
    try:
        if not client.images.get(image_id).tags:
            client.api.remove_image(image_id)
    except Exception:  # the image may be in use or already gone: nothing to undo then
        pass
