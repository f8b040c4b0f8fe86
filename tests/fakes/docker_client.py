"""A scripted stand-in for ``docker.DockerClient``, for unit tests of build.py.

It implements only the calls build.py makes, records each of them in ``client.calls`` (in
order), and answers from a script the test sets: the base images already there, the pull,
build and push streams, what each container run prints and returns. It holds no daemon; the
Docker tests use a real one.

The shapes copy the docker SDK 7 and Engine API 1.41 (docker/api/image.py ``pull``,
docker/api/build.py ``build``): streamed chunks are dicts with ``status``/``stream``/``aux``,
a failure inside a stream is a chunk with ``error`` and ``errorDetail``, and a reference the
registry does not have makes the daemon answer 404, which the SDK raises as
``docker.errors.NotFound`` before any chunk ("manifest for X not found: manifest unknown").
A pulled image lists ``<repository>@<digest>`` in its ``RepoDigests``.
"""

from __future__ import annotations

from pathlib import Path

import docker.errors


class FakeImage:
    """An image as ``client.images.get`` returns it."""

    def __init__(self, image_id: str, tags=(), repo_digests=()):
        self.id = image_id
        self.tags = list(tags)
        self.attrs = {"Id": image_id, "RepoTags": self.tags, "RepoDigests": list(repo_digests)}


class FakeContainer:
    """A finished container: ``wait`` gives its status, ``logs`` its output."""

    def __init__(self, client, status: int, output: str):
        self.client, self.status, self.output = client, status, output

    def wait(self, timeout=None):
        return {"StatusCode": self.status}

    def logs(self, stdout=True, stderr=True):
        return self.output.encode()

    def remove(self, force=False):
        self.client.calls.append(("container.remove", force))


class FakeAPI:
    """``client.api``: pull, build, tag, push, remove_image, history."""

    def __init__(self, client):
        self.client = client

    def build(self, **kwargs):
        path = Path(kwargs["path"])
        # The context is a temporary directory: keep a copy of what it held.
        self.client.context = {
            p.relative_to(path).as_posix(): (p.read_bytes(), p.stat().st_mode)
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }
        self.client.calls.append(("build", kwargs))
        yield from self.client.build_stream

    def tag(self, image, repository, tag=None, force=False):
        self.client.calls.append(("tag", image, f"{repository}:{tag}"))
        self.client.tags[f"{repository}:{tag}"] = image
        return True

    def pull(self, repository, tag=None, stream=False, decode=False, **kwargs):
        self.client.calls.append(("pull", repository))
        chunks = self.client.pull_script(repository)  # may raise, as the SDK does on 404
        return self._pulled(repository, chunks)

    def _pulled(self, reference, chunks):
        failed = False
        for chunk in chunks:
            failed = failed or "error" in chunk
            yield chunk
        if not failed:
            name, _, digest = reference.partition("@")
            repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
            repo_digest = f"{repository}@{digest or self.client.pull_digest}"
            self.client.bases[reference] = FakeImage("sha256:" + "ba" * 32, [name], [repo_digest])

    def push(self, repository, tag=None, stream=False, decode=False):
        self.client.calls.append(("push", f"{repository}:{tag}"))
        yield from self.client.push_stream(f"{repository}:{tag}")

    def remove_image(self, image, force=False, noprune=False):
        self.client.calls.append(("remove_image", image))

    def history(self, image):
        return self.client.histories[image]


class FakeImages:
    """``client.images``: get by ID or tag."""

    def __init__(self, client):
        self.client = client

    def get(self, name):
        if name in self.client.bases:
            return self.client.bases[name]
        tags = [t for t, i in self.client.tags.items() if i == name]
        if name in self.client.tags:
            return FakeImage(self.client.tags[name], [name])
        if name == self.client.built_id:
            return FakeImage(name, tags)
        raise docker.errors.ImageNotFound(f"no such image: {name}")


class FakeContainers:
    """``client.containers``: ``run`` answers from ``client.run_script``."""

    def __init__(self, client):
        self.client = client

    def run(self, image, command=None, entrypoint=None, detach=False, **kwargs):
        self.client.calls.append(("run", image, entrypoint, command, kwargs))
        status, output = self.client.run_script(image, entrypoint, command)
        return FakeContainer(self.client, status, output)


class FakeDockerClient:
    """The fake client. Set ``bases``, ``pull_script``, ``build_stream``, ``run_script``,
    ``push_stream`` per test.

    Attributes:
        calls: every call made, in order, as tuples starting with its name.
        context: {path: (bytes, mode)} of the last build context.
        tags: {repository:tag: image ID} applied so far.
        bases: {reference: FakeImage} of the images already there (a successful pull adds
            one, with ``pull_digest`` in its RepoDigests).
    """

    def __init__(self, built_id: str = "sha256:" + "ab" * 32):
        self.built_id = built_id
        self.calls: list[tuple] = []
        self.context: dict = {}
        self.tags: dict[str, str] = {}
        self.histories: dict[str, list] = {}
        self.bases: dict[str, FakeImage] = {}
        self.pull_digest = "sha256:" + "ef" * 32
        self.pull_script = lambda reference: [
            {"status": f"Pulling from {reference}", "id": "fake"},
            {"status": f"Digest: {self.pull_digest}"},
            {"status": f"Status: Downloaded newer image for {reference}"},
        ]
        self.build_stream = [
            {"stream": "Step 1/1 : FROM base\n"},
            {"aux": {"ID": built_id}},
            {"stream": f"Successfully built {built_id[7:19]}\n"},
        ]
        self.run_script = lambda image, entrypoint, command: (0, "")
        self.push_stream = lambda name: iter(
            [
                {"status": "Pushed"},
                {
                    "aux": {
                        "Tag": name.rpartition(":")[2],
                        "Digest": "sha256:" + "cd" * 32,
                        "Size": 1234,
                    }
                },
            ]
        )
        self.api = FakeAPI(self)
        self.images = FakeImages(self)
        self.containers = FakeContainers(self)

    def ping(self):
        return True

    def names(self) -> list[str]:
        """The names of the calls made, in order."""
        return [c[0] for c in self.calls]
