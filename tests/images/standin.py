"""The stand-in for the official engine base images, which cannot be pulled here.

``lmsysorg/sglang`` and ``vllm/vllm-openai`` are out of reach on our machines
(``../shared/test-environment.md``), so the tests build on a local image made with
debootstrap: Debian 12 with Python, pip and the host's CA bundle, plus the two libraries
the official bases ship and our launcher imports lazily (the project's runtime
dependencies that images/matrix.toml says every official base provides, huggingface_hub
and nvidia-ml-py). ``.ci/setup-docker`` builds it once and
keeps it; its tag is a hash of the recipe below, so a changed recipe gets a new image.

Run ``python3 -m tests.images.standin name|debs|requirements`` to print one field (the
setup script reads them from here, so the recipe lives in one place). Standard library
only: it runs before the test extras are installed.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "longcat-deploy-standin"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# python3-pip: the official bases install packages with pip, and so does our Dockerfile.
# Debian's python3 is "externally managed" (PEP 668), as Ubuntu 24.04's is in the SGLang
# image, so the stand-in also proves our pip step copes with that.
DEBS = ("python3", "python3-venv", "python3-pip", "ca-certificates", "curl")
# Bump when the recipe in .ci/setup-docker changes in a way the lists above do not show.
RECIPE_REVISION = "1"


def _name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", requirement)[1]).lower()


def requirements(root: Path = ROOT) -> list[str]:
    """Return the runtime dependencies the official bases ship, with pyproject's specifiers.

    That is each entry of pyproject ``[project].dependencies`` whose name is listed in
    images/matrix.toml ``[image].base_provides``: the stand-in carries what we assume of
    the official bases, no more, so the image build must supply everything else.

    Raises:
        OSError: pyproject.toml or images/matrix.toml cannot be read.
        KeyError: one of them lacks the table named above.
    """
    with open(root / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    with open(root / "images" / "matrix.toml", "rb") as f:
        provided = {_name(n) for n in tomllib.load(f)["image"]["base_provides"]}
    return [d for d in dependencies if _name(d) in provided]


def image_name(root: Path = ROOT) -> str:
    """Return ``REPOSITORY:TAG`` of the stand-in, the tag a hash of its whole recipe."""
    recipe = "\n".join([RECIPE_REVISION, SUITE, MIRROR, *DEBS, *requirements(root)])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{REPOSITORY}:{SUITE}-{digest}"


def main(argv: list[str]) -> int:
    """Print one field of the recipe: ``name``, ``debs`` (comma-separated) or ``requirements``
    (one per line). Returns the exit status (2 for a bad field)."""
    fields = {
        "name": image_name,
        "debs": lambda: ",".join(DEBS),
        "requirements": lambda: "\n".join(requirements()),
    }
    if len(argv) != 1 or argv[0] not in fields:
        print(f"usage: python3 -m tests.images.standin {'|'.join(fields)}", file=sys.stderr)
        return 2
    print(fields[argv[0]]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
