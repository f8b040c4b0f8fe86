"""Fake vLLM (tests only): the import paths, ``vllm`` command and parser of the pinned
release, no GPU code. See tests/fakes/engines/site/_longcat_fake_engine.py."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from vllm.engine.arg_utils import AsyncEngineArgs

try:
    __version__ = _version("vllm")
except PackageNotFoundError:  # imported from the source tree (tests/images/test_fakes.py)
    __version__ = "0+unknown"
__all__ = ["AsyncEngineArgs"]
