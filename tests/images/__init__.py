"""Tests of the images (issue 3): build.py, the Dockerfiles, and the built images.

Shared helpers live in this package (``tests.images.standin``, the minbase under the
stand-in bases, and ``tests.images.dockerutil``); the fakes (stand-in bases, fake engines,
the fake docker client) in ``tests.fakes``; the Docker fixtures in ``tests/conftest.py``.
"""
