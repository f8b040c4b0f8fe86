"""Fake ``vllm`` console command: ``vllm serve ...`` parsed like vLLM, then played."""

from __future__ import annotations

import sys

from _longcat_fake_engine import serve
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
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
    except ValueError as exc:
        print(f"vllm: error: {exc}", file=sys.stderr)
        return 2
    return serve("vllm", vars(args), port=None if args.headless else args.port,
                 model=(args.served_model_name or [args.model])[0],
                 serves_api=not args.headless)


if __name__ == "__main__":
    sys.exit(main())
