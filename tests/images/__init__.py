"""Tests of the images (issue 3): build.py, the Dockerfiles, and the built images.

Shared helpers live in this package (``tests.images.standin`` and
``tests.images.dockerutil``); the fakes in ``tests.fakes``; the Docker fixtures in
``tests/conftest.py``.
"""
