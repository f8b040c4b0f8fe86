"""Fake ``vllm.config.speculative``: the MTP method names the launcher's check looks up.

A subset of the pinned vLLM's ``MTPModelTypes``: every name here is one of the real ones
(tests/images/test_fakes.py checks). ``mtp`` is the current spelling; the others are
accepted by vLLM and rewritten to ``mtp`` with a deprecation warning.
"""

from typing import Literal

MTPModelTypes = Literal["deepseek_mtp", "longcat_flash_mtp", "mtp"]
