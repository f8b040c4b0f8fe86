"""tests/data holds copies of the shared case files and schema; they must not drift."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SHARED = DATA.parents[2] / "shared"
COPIES = {
    "launch-commands.yaml": "cases/launch-commands.yaml",
    "serving-commands.yaml": "cases/serving-commands.yaml",
    "leaderworkerset.x-k8s.io_leaderworkersets.yaml": "schemas/leaderworkerset.x-k8s.io_leaderworkersets.yaml",
}


def test_every_copy_is_there():
    for name in COPIES:
        assert (DATA / name).is_file(), f"tests/data/{name} is missing"


@pytest.mark.parametrize("name", sorted(COPIES))
def test_copy_agrees_with_the_shared_folder(name):
    shared = SHARED / COPIES[name]
    if not SHARED.is_dir():
        # The suite runs from any clone; the comparison needs the shared folder beside it.
        return
    assert shared.is_file(), f"{shared} is gone: update tests/data/README.md and COPIES"
    assert (DATA / name).read_bytes() == shared.read_bytes(), (
        f"tests/data/{name} differs from {shared}: copy the new version in "
        f"(cp {shared} tests/data/) and make the tests pass with it"
    )
