"""The dry run shows each serving value and where it came from (entrypoint.launch)."""

from __future__ import annotations

import pytest

from tests.deploy.dryrun import plan_row
from tests.launcher.support import clean_env, run_launcher


def plan(env: dict[str, str]) -> str:
    result = run_launcher(["--dry-run"], clean_env(env))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "engine, env, rows",
    [
        (
            "vllm",
            {},
            {
                "VARIANT": ["chat", "default"],
                "TOOL_CALLS": ["on", "its longcat tool parser"],
                "SERVED_MODEL_NAME": ["meituan-longcat/LongCat-Flash-Chat-FP8", "repo id"],
                "API_KEY": ["-"],
                "CONTEXT_LENGTH": ["the checkpoint's own"],
                "SHUTDOWN_TIMEOUT_S": ["120", "default"],
                "metrics": ["GET /metrics on port 8000"],
                "graceful": ["120 s", "--shutdown-timeout"],
                "API": ["the API is open"],
            },
        ),
        (
            "sglang",
            {"VARIANT": "thinking", "CONTEXT_LENGTH": "32768", "API_KEY": "sk-0123456789ab"},
            {
                "VARIANT": ["thinking", "environment"],
                "TOOL_CALLS": ["off", "no LongCat tool parser"],
                "MODEL": ["LongCat-Flash-Thinking-FP8", "checkpoint for thinking fp8"],
                "CONTEXT_LENGTH": ["32768", "environment"],
                "API_KEY": ["set (not shown)"],
                "SHUTDOWN_TIMEOUT_S": ["drains without a limit"],
                "reasoning": ["stays in the content"],
                "metrics": ["--enable-metrics"],
                "API": ["private --config file"],
            },
        ),
        (
            "vllm",
            {
                "VARIANT": "thinking",
                "MODEL": "/models/longcat",
                "SERVED_MODEL_NAME": "longcat",
                "API_KEY_FILE": "/run/secrets/key",
            },
            {
                "SERVED_MODEL_NAME": ["longcat", "environment"],
                "API_KEY_FILE": ["set (its key not shown)"],
                "reasoning": ["apart from the content", "longcat_think"],
                "API": ["VLLM_API_KEY", "API_KEY_FILE; /health and /metrics stay open"],
            },
        ),
        (
            "vllm",
            {"PRECISION": "bf16", "MASTER_IP": "192.0.2.10", "NODE_RANK": "1"},
            {"expert": ["16", "tensor x data parallel size"], "graceful": ["120 s"]},
        ),
    ],
)
def test_each_serving_value_is_shown_with_its_source(engine, env, rows):
    stdout = plan({"ENGINE": engine, **env})
    for name, words in rows.items():
        row = plan_row(stdout, name)
        for word in words:
            assert word in row, (name, word, row)
    assert "sk-0123456789ab" not in stdout


def test_a_headless_node_shows_no_metrics_row():
    stdout = plan(
        {"ENGINE": "vllm", "PRECISION": "bf16", "MASTER_IP": "192.0.2.10", "NODE_RANK": "1"}
    )
    with pytest.raises(AssertionError):
        plan_row(stdout, "metrics")


def test_a_key_file_is_listed_among_what_the_launch_does_first():
    stdout = plan({"ENGINE": "vllm", "API_KEY_FILE": "/run/secrets/key"})
    before = stdout.split("before launch", 1)[1]
    assert "/run/secrets/key" in plan_row(before, "API")


@pytest.mark.parametrize(
    "env, shown, source",
    [
        ({}, "--max-num-seqs 8", "the arguments after the image name"),
        (
            {"EXTRA_ARGS": "--enforce-eager"},
            "--enforce-eager --max-num-seqs 8",
            "environment, then the arguments after the image name",
        ),
    ],
)
def test_arguments_after_the_image_name_are_not_shown_as_a_default(env, shown, source):
    """They were listed in the EXTRA_ARGS row with the source "default"."""
    from entrypoint.launch import describe_plan
    from entrypoint.plan import resolve_plan
    from entrypoint.settings import load_settings

    node = resolve_plan(load_settings({"ENGINE": "vllm", **env}), ["--max-num-seqs", "8"])
    row = plan_row(describe_plan(node, []), "EXTRA_ARGS")
    assert row.split(None, 1)[1].startswith(shown), row
    assert row.endswith(source) and "default" not in row, row
