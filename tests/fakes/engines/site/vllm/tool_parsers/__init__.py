"""Fake ``vllm.tool_parsers``: the tool-parser registry as the pinned vLLM defines it
(vllm/tool_parsers/abstract_tool_parser.py, ``ToolParserManager``): ``list_registered``
names every parser, ``import_tool_parser(path)`` loads a plugin file. The fake knows a
subset of the real names (tests/images/test_fakes.py checks them against the pinned vLLM).
"""

from __future__ import annotations


class ToolParserManager:
    """The registry: the names of the tool parsers vLLM ships that our plans use."""

    tool_parsers: dict = {"hermes": None, "longcat": None}

    @classmethod
    def list_registered(cls) -> list[str]:
        return sorted(cls.tool_parsers)

    @classmethod
    def import_tool_parser(cls, plugin_path: str) -> None:
        """Our plans load no tool parser plugin; one given is imported like a reasoning
        parser plugin (vllm/utils/import_utils.py, ``import_plugin``)."""
        from vllm.reasoning import ReasoningParserManager

        ReasoningParserManager.import_reasoning_parser(plugin_path)


__all__ = ["ToolParserManager"]
