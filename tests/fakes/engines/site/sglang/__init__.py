"""Fake SGLang (tests only): the import paths and parser of the pinned release, no GPU code.

See tests/fakes/engines/site/_longcat_fake_engine.py for what the fake server does.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("sglang")
except PackageNotFoundError:  # imported from the source tree (tests/images/test_fakes.py)
    __version__ = "0+unknown"
