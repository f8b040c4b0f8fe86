"""Fixtures: a fake Hub on 127.0.0.1 serving a tiny LongCat-like repository."""

from __future__ import annotations

import pytest

from tests.fakes.hub import FakeHub, FakeRepo, longcat_like_files
from tests.weights.support import CHECKPOINT


@pytest.fixture
def hub():
    """A running fake Hub (``hub.url``; ``hub.requests`` records every request)."""
    with FakeHub() as server:
        yield server


@pytest.fixture
def repo(hub) -> FakeRepo:
    """The FP8 checkpoint's id, served by ``hub`` with a tiny LongCat-like layout."""
    return hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
