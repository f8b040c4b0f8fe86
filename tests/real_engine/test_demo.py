"""The README's first command, run as a newcomer runs it (the environment already built)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.real_engine import server

pytestmark = pytest.mark.real_engine


def test_the_demo_prints_a_real_chat_completion_and_exits_0(real_engine):
    done = subprocess.run(
        [sys.executable, "-m", "tests.real_engine.demo"],
        cwd=server.REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout)  # stdout is the response's JSON and nothing else
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["token_ids"] == real_engine.reference["completion_token_ids"]
    assert "the answer is transformers' own" in done.stderr
    assert "stopped" in done.stderr


def test_the_demo_takes_no_arguments():
    done = subprocess.run(
        [sys.executable, "-m", "tests.real_engine.demo", "now"],
        cwd=server.REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "README's first command" in done.stderr
