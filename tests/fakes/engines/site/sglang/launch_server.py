"""Fake ``python -m sglang.launch_server``: parse like SGLang, then play the server.

Every node answers ``/health``; only node 0 serves the API (``/v1/models``), as in
engine-notes.md ("SGLang").
"""

from __future__ import annotations

import argparse
import sys

from _longcat_fake_engine import serve

from sglang.srt.server_args import ServerArgs


def main(argv: list[str]) -> int:
    """Parse ``argv`` with the fake ServerArgs parser (exit 2 on a rejected flag), then serve."""
    parser = argparse.ArgumentParser(prog="sglang.launch_server")
    ServerArgs.add_cli_args(parser)
    args = parser.parse_args(argv)
    return serve(
        "sglang",
        vars(args),
        port=args.port,
        model=args.served_model_name or args.model_path,
        serves_api=args.node_rank == 0,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
