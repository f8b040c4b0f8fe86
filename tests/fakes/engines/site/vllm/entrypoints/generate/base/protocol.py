"""Fake ``vllm.entrypoints.generate.base.protocol``: the ``DeltaMessage`` a reasoning parser
returns for one streamed delta (the pinned vLLM's is a pydantic model with these fields)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class DeltaMessage:
    """One streamed piece of a chat answer."""

    role: str | None = None
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list = dataclasses.field(default_factory=list)
