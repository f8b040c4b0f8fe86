"""Tests of the images (issue 3): build.py, the Dockerfiles, and the built images.

Shared helpers live in this package (``tests.images.standin``, ``tests.images.fakes``,
``tests.images.dockerutil``); the Docker fixtures live in ``tests/conftest.py``.
"""
