"""Engine modules as plain functions: flag spelling checks and quoting."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from entrypoint.engines import unknown_flags
from entrypoint.output import command_line, quote, redact_argv
from entrypoint.values import join_host_port

KNOWN = {"--tp-size", "--tp-rank", "--model-path", "--host"}


def test_exact_names_pass_and_values_are_not_flags():
    assert (
        unknown_flags(["--tp-size", "8", "--host=::", "-1", "--model-path", "m"], KNOWN, "x 1")
        == []
    )


def test_unknown_and_abbreviated_flags_are_named():
    found = unknown_flags(["--enable-ep-moe", "--tp", "8", "--model", "m"], KNOWN, "x 1")
    assert found[0] == "--enable-ep-moe: not an option of x 1"
    assert found[1].startswith("--tp: only an abbreviation of --tp-rank or --tp-size")
    assert found[2].startswith("--model: only an abbreviation of --model-path")


def test_dist_init_addr_brackets_ipv6_only():
    assert join_host_port("10.0.0.1", 5000) == "10.0.0.1:5000"
    assert join_host_port("fd00::1", 5000) == "[fd00::1]:5000"
    assert join_host_port("node0.example", 5000) == "node0.example:5000"


def test_api_keys_are_redacted_in_printed_commands():
    argv = ["vllm", "serve", "m", "--api-key", "sk-1", "--api-key=sk-2", "--port", "1"]
    assert redact_argv(argv) == [
        "vllm",
        "serve",
        "m",
        "--api-key",
        "***",
        "--api-key=***",
        "--port",
        "1",
    ]
    assert "sk-" not in command_line(argv)


@given(st.text())
def test_quote_is_shlex_quote(word):
    assert quote(word) == shlex.quote(word)


@given(st.lists(st.text()))
def test_command_line_splits_back_to_the_argv(argv):
    if "--api-key" not in " ".join(argv):
        assert shlex.split(command_line(argv)) == argv
