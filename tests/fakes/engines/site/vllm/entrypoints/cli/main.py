"""Fake ``vllm`` console command: ``vllm serve ...`` parsed like vLLM, then played."""

from __future__ import annotations

import sys

from _longcat_fake_engine import serve

from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.reasoning import ReasoningParserManager
from vllm.tool_parsers import ToolParserManager
from vllm.utils.argparse_utils import FlexibleArgumentParser


def main() -> int:
    """Parse ``sys.argv`` (exit 2 on a rejected flag), validate, then serve.

    A headless node (``--headless``) serves no HTTP, as in engine-notes.md ("vLLM").
    """
    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(dest="subparser", required=True)
    command = ServeSubcommand()
    command.subparser_init(subparsers)
    args = parser.parse_args(sys.argv[1:])
    try:
        command.validate(args)
        AsyncEngineArgs.from_cli_args(args)
        # As the real API server does before it serves (vllm/entrypoints/common/cli_args.py,
        # init_parser_plugin and validate_api_server_args): load the plugins, check names.
        if args.reasoning_parser_plugin and len(args.reasoning_parser_plugin) > 3:
            ReasoningParserManager.import_reasoning_parser(args.reasoning_parser_plugin)
        if (
            args.enable_auto_tool_choice
            and args.tool_call_parser not in ToolParserManager.list_registered()
        ):
            raise KeyError(f"invalid tool call parser: {args.tool_call_parser}")
        if (
            args.reasoning_parser
            and args.reasoning_parser not in ReasoningParserManager.list_registered()
        ):
            raise KeyError(f"invalid reasoning parser: {args.reasoning_parser}")
    except (ValueError, KeyError) as exc:
        print(f"vllm: error: {exc}", file=sys.stderr)
        return 2
    return serve(
        "vllm",
        vars(args),
        port=None if args.headless else args.port,
        model=(args.served_model_name or [args.model])[0],
        serves_api=not args.headless,
    )


if __name__ == "__main__":
    sys.exit(main())
