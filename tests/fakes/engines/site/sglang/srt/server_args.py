"""Fake ``sglang.srt.server_args``: ``ServerArgs.add_cli_args`` with the options our plans
use, as the pinned SGLang defines them (tests/images/test_fakes.py checks each one)."""

from __future__ import annotations

from _longcat_fake_options import add_options

ATTENTION_BACKENDS = [
    "triton",
    "torch_native",
    "flex_attention",
    "dsa",
    "nsa",
    "qsa",
    "dsv4",
    "compressed",
    "fa3",
    "fa4",
    "flashinfer",
    "llada2_cfg_flashinfer",
    "flashmla",
    "trtllm_mla",
    "cutedsl_mla",
    "tokenspeed_mla",
    "trtllm_mha",
    "hpc_ops",
    "minicpm_flashattn",
    "minicpm_flashinfer",
    "aiter",
    "wave",
    "intel_amx",
    "ascend",
    "intel_xpu",
]


def human_readable_int(value: str) -> int:
    """SGLang's ``human_readable_int``: ``32k`` -> 32768, plain integers as they are."""
    text = value.strip().lower()
    for suffix, factor in (("k", 1024), ("m", 1024**2)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


OPTIONS = [
    (["--model-path", "--model"], dict(type=str, required=True)),
    (["--trust-remote-code"], dict(action="store_true")),
    (["--attention-backend"], dict(type=str, choices=ATTENTION_BACKENDS, default=None)),
    (["--tp-size", "--tensor-parallel-size"], dict(type=int, default=1)),
    (["--ep-size", "--expert-parallel-size", "--ep"], dict(type=int, default=1)),
    (["--host"], dict(type=str, default="127.0.0.1")),
    (["--port"], dict(type=int, default=30000)),
    (["--served-model-name"], dict(type=str, default=None)),
    (["--nnodes"], dict(type=int, default=1)),
    (["--node-rank"], dict(type=int, default=0)),
    (["--dist-init-addr", "--nccl-init-addr"], dict(type=str, default=None)),
    (["--dist-timeout"], dict(type=int, default=None)),
    (["--speculative-algorithm"], dict(type=str, default=None)),
    (["--speculative-draft-model-path", "--speculative-draft-model"], dict(type=str, default=None)),
    (["--speculative-num-steps"], dict(type=int, default=None)),
    (["--speculative-eagle-topk"], dict(type=int, default=None)),
    (["--speculative-num-draft-tokens"], dict(type=int, default=None)),
    (["--api-key"], dict(type=str, default=None)),
    (["--mem-fraction-static"], dict(type=float, default=None)),
    (["--context-length"], dict(type=human_readable_int, default=None)),
    (["--log-level"], dict(type=str, default="info")),
    (["--enable-metrics"], dict(action="store_true")),
    (["--config"], dict(type=str, default=None)),
]


class ServerArgs:
    """The fake's server arguments: only the parser part of the real class."""

    @staticmethod
    def add_cli_args(parser) -> None:
        """Add the options in ``OPTIONS`` (minus ``FAKE_ENGINE_REJECT``) to ``parser``."""
        add_options(parser, OPTIONS)
