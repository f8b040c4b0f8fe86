"""Fake ``vllm.entrypoints.common.cli_args``: the API server's parser plugin loading and its
check of the parser names, as the pinned vLLM runs them before it serves
(vllm/entrypoints/launchers/launcher.py, setup_server)."""

from __future__ import annotations

from vllm.reasoning import ReasoningParserManager

# Tool parsers the fake knows: a subset of the pinned vLLM's registry
# (vllm/tool_parsers/__init__.py; tests/images/test_fakes.py checks).
TOOL_PARSERS = ("hermes", "longcat")


def init_parser_plugin(args) -> None:
    """Import ``--reasoning-parser-plugin`` (longer than 3 characters, as vLLM checks)."""
    plugin = getattr(args, "reasoning_parser_plugin", "")
    if plugin and len(plugin) > 3:
        ReasoningParserManager.import_reasoning_parser(plugin)


def validate_api_server_args(args) -> None:
    """Refuse an unknown tool parser with auto tool choice, as vLLM does.

    Raises:
        KeyError: ``invalid tool call parser: NAME``.
    """
    if getattr(args, "enable_auto_tool_choice", False) and \
            args.tool_call_parser not in TOOL_PARSERS:
        raise KeyError(f"invalid tool call parser: {args.tool_call_parser} "
                       f"(chose from {{ {','.join(TOOL_PARSERS)} }})")
