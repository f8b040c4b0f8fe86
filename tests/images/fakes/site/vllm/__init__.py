"""Fake vLLM (tests only): the import paths, ``vllm`` command and parser of the pinned
release, no GPU code. See tests/images/fakes/site/_longcat_fake_engine.py."""

from importlib.metadata import version as _version

from vllm.engine.arg_utils import AsyncEngineArgs

__version__ = _version("vllm")
__all__ = ["AsyncEngineArgs"]
