"""Fake ``vllm.entrypoints.cli.serve.ServeSubcommand``: the ``vllm serve`` options our plans
use, as the pinned vLLM defines them (tests/images/test_fakes.py checks each one)."""

from __future__ import annotations

import json

from _longcat_fake_options import add_options

from vllm.utils.argparse_utils import EnableDisableAction, optional_type


def human_readable_int_or_auto(value: str):
    """vLLM's ``--max-model-len`` type: ``auto``/-1, ``32k``, or an integer."""
    text = value.strip().lower()
    if text in ("auto", "-1"):
        return -1
    for suffix, factor in (("k", 1000), ("m", 1000**2)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def parse_reasoning_parser(value: str) -> str:
    """vLLM's ``--reasoning-parser`` type: ``none`` (any case) is the unset default."""
    return "" if value.lower() == "none" else value


OPTIONS = [
    (["--model"], dict(type=str, default="Qwen/Qwen3-0.6B")),
    (["--trust-remote-code", "--no-trust-remote-code"], dict(action=EnableDisableAction)),
    (
        ["--enable-expert-parallel", "-ep", "--disable-expert-parallel"],
        dict(action=EnableDisableAction),
    ),
    (["--tensor-parallel-size", "-tp"], dict(type=int, default=1)),
    (["--host"], dict(type=optional_type(str), default=None)),
    (["--port"], dict(type=int, default=8000)),
    (["--served-model-name"], dict(type=optional_type(str), nargs="+", default=None)),
    (["--data-parallel-size", "-dp"], dict(type=int, default=1)),
    (["--data-parallel-size-local", "-dpl"], dict(type=int, default=None)),
    (["--data-parallel-address", "-dpa"], dict(type=str, default=None)),
    (["--data-parallel-rpc-port", "-dpp"], dict(type=int, default=None)),
    (["--headless"], dict(action="store_true")),
    (["--data-parallel-start-rank", "-dpr"], dict(type=int, default=None)),
    (["--data-parallel-rank", "-dpn"], dict(type=int, default=None)),
    (["--speculative-config", "-sc"], dict(type=optional_type(json.loads), default=None)),
    (["--api-key"], dict(type=optional_type(str), nargs="+", default=None)),
    (["--max-model-len"], dict(type=human_readable_int_or_auto, default=None)),
    (["--gpu-memory-utilization", "--device-memory-utilization"], dict(type=float, default=0.92)),
    (["--enable-auto-tool-choice", "--disable-auto-tool-choice"], dict(action=EnableDisableAction)),
    (["--tool-call-parser"], dict(type=optional_type(str), default=None)),
    (["--reasoning-parser"], dict(type=parse_reasoning_parser, default="")),
    (["--reasoning-parser-plugin"], dict(type=str, default="")),
    (["--shutdown-timeout"], dict(type=int, default=0)),
]


class ServeSubcommand:
    """``vllm serve [model_tag] [options]``."""

    name = "serve"

    def subparser_init(self, subparsers):
        """Add the ``serve`` parser to ``subparsers`` and return it."""
        parser = subparsers.add_parser("serve", help="Start the vLLM OpenAI-compatible server.")
        parser.add_argument("model_tag", type=str, nargs="?", help="The model tag to serve.")
        add_options(parser, OPTIONS)
        return parser

    @staticmethod
    def validate(args) -> None:
        """Reject what ``vllm serve`` rejects after parsing, for the options above."""
        if args.model_tag is not None:
            args.model = args.model_tag
        if args.data_parallel_start_rank is not None and not args.headless:
            # The pinned vLLM switches to external load balancing here (engine-notes.md); our plans
            # never ask for that, so the fake refuses it outright.
            raise ValueError(
                "--data-parallel-start-rank without --headless: "
                "external load balancing is not what the plans ask for"
            )
