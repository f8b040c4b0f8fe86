"""Fake SGLang (tests only): the import paths and parser of the pinned release, no GPU code.

See tests/images/fakes/site/_longcat_fake_engine.py for what the fake server does.
"""

from importlib.metadata import version as _version

__version__ = _version("sglang")
