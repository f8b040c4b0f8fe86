"""The build of a plan, step by step: bases, context, build, verify, tag, push, summary.

Every base is resolved (found or pulled) before anything is built, so a base that does not
exist fails at once. An image is tagged only once it passed ``images.verify``.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from .context import (
    build_cache_dir,
    dependency_wheels,
    init_binary,
    launcher_wheel,
    missing_dependencies,
    prepare_context,
)
from .dockerbuild import Base, docker_client, resolve_base, stream_build
from .errors import BuildError
from .matrix import ROOT, Target, load_matrix, record_digest
from .publish import discard_untagged, push_tags, tag_image
from .verify import verify_image


def _record(target: Target, base: Base, root: Path, out) -> None:
    """Fill the digest of ``target``'s official base into the matrix, when it is missing."""
    if target.base_image != target.official_base:
        out.write(
            f"record-digests: {target.engine} {target.cuda} builds FROM "
            f"{target.base_image} (--base-image), not the official base; nothing "
            "recorded\n"
        )
    elif target.base_digest:
        out.write(
            f"record-digests: {target.engine} {target.cuda} already pins {target.base_digest}\n"
        )
    elif not base.digest:
        out.write(
            f"record-digests: {base.reference} came from no registry, so it has no "
            "digest to record\n"
        )
    else:
        path = record_digest(root, target.engine, target.cuda, base.digest)
        out.write(
            f"record-digests: {target.engine} {target.cuda}: digest = "
            f'"{base.digest}" written to {path}\n'
        )


def format_summary(results: dict[str, dict]) -> str:
    """Render ``build_targets``' results for a human: one block per image."""
    lines = ["=== summary"]
    for result in results.values():
        lines.append(
            f"{result['engine']} {result['version']} {result['cuda']}: "
            f"{result['id'][:19]}, engine {result['engine']} "
            f"{result['engine_version']}"
        )
        digest = result["base_digest"] or "none: the base came from no registry"
        lines.append(f"  base         {result['base']}")
        lines.append(f"  base digest  {digest}")
        for i, tag in enumerate(result["tags"]):
            pushed = result["digests"].get(tag)
            lines.append(
                f"  {'tags' if i == 0 else '':<12} {tag}" + (f"@{pushed}" if pushed else "")
            )
    return "\n".join(lines) + "\n"


def build_targets(
    targets: list[Target],
    *,
    client=None,
    root: Path = ROOT,
    no_cache: bool = False,
    push: bool = False,
    cache: Path | None = None,
    matrix: dict | None = None,
    record_digests: bool = False,
    out=None,
) -> dict[str, dict]:
    """Build, verify and tag each target; push too when ``push``; print a summary.

    Args:
        targets: from ``images.matrix.plan``.
        client: a docker client (default: from the environment).
        root: the project root the images are built from.
        no_cache: build every step again.
        push: push every tag once the image is verified and tagged.
        cache: where wheels are cached (default: ``build_cache_dir()``).
        matrix: the parsed matrix (default: read from ``root``).
        record_digests: write the digest of each official base that the matrix lacks into
            ``root``'s images/matrix.toml, once the base is pulled.
        out: where progress, the build output and the summary go (default: ``sys.stdout``
            at the call).

    Returns:
        {each image's first tag: {"id", "tags", "digests" (pushed tag -> digest), "engine",
        "version", "cuda", "engine_version" (as the image reports it), "base", "base_digest"}}.

    Raises:
        BuildError: the first failure, with the failing step's log or the rejected flags.
            Images already verified keep their tags.
    """
    out = sys.stdout if out is None else out  # looked up now: build.py redacts it
    matrix = load_matrix(root) if matrix is None else matrix
    client = docker_client() if client is None else client
    bases: dict[str, Base] = {}
    for target in targets:
        if target.base_image not in bases:
            bases[target.base_image] = resolve_base(client, target.base_image, out=out)
        if record_digests:
            _record(target, bases[target.base_image], root, out)
    cache = build_cache_dir() if cache is None else cache
    cache.mkdir(parents=True, exist_ok=True)
    init = init_binary(matrix, cache)
    deps = dependency_wheels(missing_dependencies(matrix, root), cache)
    results = {}
    with tempfile.TemporaryDirectory(prefix="longcat-build.") as tmp:
        launcher = launcher_wheel(root, Path(tmp) / "dist")
        for target in targets:
            base = bases[target.base_image]
            target = dataclasses.replace(
                target, build_args={**target.build_args, "BASE_DIGEST": base.digest}
            )
            out.write(
                f"=== build {target.engine} {target.version} {target.cuda} "
                f"FROM {target.base_image} (digest: {base.digest or 'none'})\n"
            )
            context = prepare_context(
                target,
                Path(tmp) / f"{target.engine}-{target.cuda}",
                root=root,
                init=init,
                deps=deps,
                launcher=launcher,
            )
            image_id = stream_build(client, context, target, no_cache=no_cache, out=out)
            try:
                engine_version = verify_image(client, image_id, target, out=out)
            except BuildError:
                discard_untagged(client, image_id)
                raise
            tag_image(client, image_id, target.tags)
            out.write(f"=== tagged {image_id[:19]}: {', '.join(target.tags)}\n")
            digests = push_tags(client, target.tags, out=out) if push else {}
            results[target.tags[0]] = {
                "id": image_id,
                "tags": list(target.tags),
                "digests": digests,
                "engine": target.engine,
                "version": target.version,
                "cuda": target.cuda,
                "engine_version": engine_version,
                "base": base.reference,
                "base_digest": base.digest,
            }
    out.write(format_summary(results))
    return results
